//! Facts about the host that `/info` and `/version` report, read once at startup.

use std::path::Path;
use std::time::SystemTime;

/// What the host is: read once, since none of it changes while berthd runs.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel_version: String,
    pub uname_machine: String,
    /// The architecture in Go's naming (amd64, arm64), as Docker reports it.
    pub go_arch: &'static str,
    pub operating_system: String,
    pub os_version: String,
    pub ncpu: usize,
    pub mem_total: u64,
    pub root_fs_type: String,
}

impl HostFacts {
    pub fn read(root: &Path) -> HostFacts {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os_field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(0);
        HostFacts {
            hostname: field(|u| u.nodename()),
            kernel_version: field(|u| u.release()),
            uname_machine: field(|u| u.machine()),
            go_arch: match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                "x86" => "386",
                other => other,
            },
            operating_system: os_field("PRETTY_NAME"),
            os_version: os_field("VERSION_ID"),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total,
            root_fs_type: fs_type(root),
        }
    }

    /// berthd's open file descriptors right now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    pub fn now_rfc3339(&self) -> String {
        humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
    }
}

/// The filesystem type under `path`, named as `df -T` would.
fn fs_type(path: &Path) -> String {
    let Ok(stat) = nix::sys::statfs::statfs(path) else {
        return "unknown".to_string();
    };
    let magic = stat.filesystem_type().0;
    match magic {
        0xEF53 => "extfs",
        0x9123683E => "btrfs",
        0x58465342 => "xfs",
        0x01021994 => "tmpfs",
        0x794C7630 => "overlayfs",
        _ => "unknown",
    }
    .to_string()
}
