//! What the host's cgroups and network settings let containers have, checked the way
//! dockerd checks them for `/info`: on cgroup v1, a controller's hierarchy (found in
//! `/proc/self/mountinfo`) and the control files in it; on cgroup v2, the controllers
//! the root group offers. Each `false` becomes the warning dockerd 20.10 prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the facts are read from; [`Sources::host`] for this host, a directory tree
/// in tests.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `/proc/self/mountinfo`'s text.
    pub mountinfo: String,
    /// The cgroup v2 root (`/sys/fs/cgroup`) when the host is cgroup v2 only.
    pub v2_root: Option<PathBuf>,
    /// `/proc/self/cgroup`'s text.
    pub self_cgroup: String,
    /// `/proc/sys`.
    pub proc_sys: PathBuf,
}

impl Sources {
    pub fn host() -> Sources {
        let root = Path::new("/sys/fs/cgroup");
        Sources {
            mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
            v2_root: root
                .join("cgroup.controllers")
                .exists()
                .then(|| root.to_path_buf()),
            self_cgroup: std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
            proc_sys: PathBuf::from("/proc/sys"),
        }
    }
}

/// The features `/info` reports (the names are Docker's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    pub cgroup_v2: bool,
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub kernel_memory: bool,
    pub kernel_memory_tcp: bool,
    pub oom_kill_disable: bool,
    pub cpu_cfs: bool,
    pub cpu_shares: bool,
    pub cpuset: bool,
    pub pids_limit: bool,
    pub blkio_weight: bool,
    pub blkio_weight_device: bool,
    pub blkio_read_bps_device: bool,
    pub blkio_write_bps_device: bool,
    pub blkio_read_iops_device: bool,
    pub blkio_write_iops_device: bool,
    pub ipv4_forwarding: bool,
    pub bridge_nf_iptables: bool,
    pub bridge_nf_ip6tables: bool,
}

impl Features {
    pub fn probe(src: &Sources) -> Features {
        let mut f = match &src.v2_root {
            Some(root) => v2(root, &src.self_cgroup),
            None => v1(&v1_mountpoints(&src.mountinfo)),
        };
        let on = |name: &str| {
            std::fs::read_to_string(src.proc_sys.join(name)).is_ok_and(|v| v.trim() == "1")
        };
        f.ipv4_forwarding = on("net/ipv4/ip_forward");
        f.bridge_nf_iptables = on("net/bridge/bridge-nf-call-iptables");
        f.bridge_nf_ip6tables = on("net/bridge/bridge-nf-call-ip6tables");
        f
    }

    /// dockerd 20.10's warnings for what is missing (`docker info` prints them).
    pub fn warnings(&self) -> Vec<String> {
        let v1 = !self.cgroup_v2;
        let mut out = Vec::new();
        let mut warn = |missing: bool, text: &str| {
            if missing {
                out.push(format!("WARNING: {text}"));
            }
        };
        warn(!self.memory_limit, "No memory limit support");
        warn(!self.swap_limit, "No swap limit support");
        // Not settable on cgroup v2, where dockerd does not warn about them either.
        warn(
            v1 && !self.kernel_memory_tcp,
            "No kernel memory TCP limit support",
        );
        warn(v1 && !self.oom_kill_disable, "No oom kill disable support");
        warn(!self.cpu_cfs, "No cpu cfs quota support");
        warn(!self.cpu_cfs, "No cpu cfs period support");
        warn(!self.cpu_shares, "No cpu shares support");
        warn(!self.cpuset, "No cpuset support");
        // blkio weight went from cgroup v1 with kernel 5.0: dockerd warns on v2 only.
        warn(!v1 && !self.blkio_weight, "No io.weight support");
        warn(
            !v1 && !self.blkio_weight_device,
            "No io.weight (per device) support",
        );
        for (missing, v1_name, v2_name) in [
            (
                !self.blkio_read_bps_device,
                "blkio throttle.read_bps_device",
                "io.max (rbps)",
            ),
            (
                !self.blkio_write_bps_device,
                "blkio throttle.write_bps_device",
                "io.max (wbps)",
            ),
            (
                !self.blkio_read_iops_device,
                "blkio throttle.read_iops_device",
                "io.max (riops)",
            ),
            (
                !self.blkio_write_iops_device,
                "blkio throttle.write_iops_device",
                "io.max (wiops)",
            ),
        ] {
            let name = if v1 { v1_name } else { v2_name };
            warn(missing, &format!("No {name} support"));
        }
        warn(!self.ipv4_forwarding, "IPv4 forwarding is disabled");
        warn(
            !self.bridge_nf_iptables,
            "bridge-nf-call-iptables is disabled",
        );
        warn(
            !self.bridge_nf_ip6tables,
            "bridge-nf-call-ip6tables is disabled",
        );
        out
    }
}

/// Each v1 controller's hierarchy mountpoint, from mountinfo's `cgroup` mounts (the
/// super options name the controllers: `rw,cpu,cpuacct`).
fn v1_mountpoints(mountinfo: &str) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split_whitespace();
        if right.next() != Some("cgroup") {
            continue;
        }
        let (Some(_source), Some(super_opts)) = (right.next(), right.next()) else {
            continue;
        };
        let Some(mountpoint) = left.split_whitespace().nth(4) else {
            continue;
        };
        for controller in super_opts.split(',').filter(|o| !matches!(*o, "rw" | "ro")) {
            out.entry(controller.to_string())
                .or_insert_with(|| PathBuf::from(unescape(mountpoint)));
        }
    }
    out
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn v1(mounts: &BTreeMap<String, PathBuf>) -> Features {
    let has = |controller: &str, file: &str| {
        mounts
            .get(controller)
            .is_some_and(|m| m.join(file).exists())
    };
    Features {
        cgroup_v2: false,
        memory_limit: mounts.contains_key("memory"),
        swap_limit: has("memory", "memory.memsw.limit_in_bytes"),
        kernel_memory: has("memory", "memory.kmem.limit_in_bytes"),
        kernel_memory_tcp: has("memory", "memory.kmem.tcp.limit_in_bytes"),
        oom_kill_disable: has("memory", "memory.oom_control"),
        cpu_cfs: has("cpu", "cpu.cfs_quota_us"),
        cpu_shares: has("cpu", "cpu.shares"),
        cpuset: mounts.contains_key("cpuset"),
        pids_limit: mounts.contains_key("pids"),
        blkio_weight: has("blkio", "blkio.weight"),
        blkio_weight_device: has("blkio", "blkio.weight_device"),
        blkio_read_bps_device: has("blkio", "blkio.throttle.read_bps_device"),
        blkio_write_bps_device: has("blkio", "blkio.throttle.write_bps_device"),
        blkio_read_iops_device: has("blkio", "blkio.throttle.read_iops_device"),
        blkio_write_iops_device: has("blkio", "blkio.throttle.write_iops_device"),
        ..Features::default()
    }
}

fn v2(root: &Path, self_cgroup: &str) -> Features {
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    // Swap limits are set per group: the file shows in berthd's own group when the
    // kernel accounts swap.
    let own = self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_start_matches('/'));
    let io = has("io");
    Features {
        cgroup_v2: true,
        memory_limit: has("memory"),
        swap_limit: has("memory")
            && own.is_some_and(|g| root.join(g).join("memory.swap.max").exists()),
        cpu_cfs: has("cpu"),
        cpu_shares: has("cpu"),
        cpuset: has("cpuset"),
        pids_limit: has("pids"),
        blkio_weight: io,
        blkio_weight_device: io,
        blkio_read_bps_device: io,
        blkio_write_bps_device: io,
        blkio_read_iops_device: io,
        blkio_write_iops_device: io,
        ..Features::default()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A v1 host laid out in `dir`: memory, cpu and blkio hierarchies with `files`.
    fn v1_host(dir: &Path, files: &[&str]) -> Sources {
        let mut mountinfo = String::from(
            "25 1 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
             40 25 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        );
        for (i, (name, opts)) in [
            ("memory", "rw,memory"),
            ("cpu,cpuacct", "rw,cpu,cpuacct"),
            ("blkio", "rw,blkio"),
        ]
        .into_iter()
        .enumerate()
        {
            let mp = dir.join("cg").join(name);
            let _ = fs::create_dir_all(&mp);
            mountinfo.push_str(&format!(
                "{} 25 0:{} / {} rw,nosuid shared:{} - cgroup cgroup {opts}\n",
                50 + i,
                40 + i,
                mp.display(),
                10 + i
            ));
        }
        for f in files {
            let _ = fs::write(dir.join("cg").join(f), "");
        }
        let sys = dir.join("sys");
        let _ = fs::create_dir_all(sys.join("net/ipv4"));
        let _ = fs::write(sys.join("net/ipv4/ip_forward"), "1\n");
        Sources {
            mountinfo,
            v2_root: None,
            self_cgroup: String::new(),
            proc_sys: sys,
        }
    }

    #[test]
    fn v1_features_follow_the_control_files() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let src = v1_host(
            dir.path(),
            &[
                "memory/memory.oom_control",
                "memory/memory.kmem.tcp.limit_in_bytes",
                "cpu,cpuacct/cpu.shares",
                "cpu,cpuacct/cpu.cfs_quota_us",
                "blkio/blkio.throttle.read_bps_device",
                "blkio/blkio.throttle.write_bps_device",
                "blkio/blkio.throttle.read_iops_device",
                "blkio/blkio.throttle.write_iops_device",
            ],
        );
        let f = Features::probe(&src);
        assert!(f.memory_limit && f.oom_kill_disable && f.kernel_memory_tcp);
        assert!(f.cpu_cfs && f.cpu_shares && f.ipv4_forwarding);
        assert!(!f.swap_limit && !f.cpuset && !f.pids_limit && !f.blkio_weight);
        // No blkio weight warning on v1, as dockerd; no bridge module loaded here.
        assert_eq!(
            f.warnings(),
            [
                "WARNING: No swap limit support",
                "WARNING: No cpuset support",
                "WARNING: bridge-nf-call-iptables is disabled",
                "WARNING: bridge-nf-call-ip6tables is disabled",
            ]
        );
        Ok(())
    }

    #[test]
    fn a_v1_host_without_oom_control_warns() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = Features::probe(&v1_host(dir.path(), &[]));
        assert!(f.memory_limit && !f.oom_kill_disable);
        let warnings = f.warnings();
        for w in [
            "WARNING: No oom kill disable support",
            "WARNING: No kernel memory TCP limit support",
            "WARNING: No cpu cfs quota support",
            "WARNING: No cpu cfs period support",
            "WARNING: No cpu shares support",
            "WARNING: No blkio throttle.read_bps_device support",
        ] {
            assert!(warnings.iter().any(|x| x == w), "{w} in {warnings:?}");
        }
        Ok(())
    }

    #[test]
    fn v2_reports_no_oom_kill_disable_and_does_not_warn_about_it() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )?;
        fs::create_dir_all(root.join("berth.slice"))?;
        fs::write(root.join("berth.slice/memory.swap.max"), "max\n")?;
        let src = Sources {
            mountinfo: String::new(),
            v2_root: Some(root.to_path_buf()),
            self_cgroup: "0::/berth.slice\n".into(),
            proc_sys: root.join("no-sys"),
        };
        let f = Features::probe(&src);
        assert!(f.cgroup_v2 && f.memory_limit && f.swap_limit && f.blkio_weight);
        assert!(!f.oom_kill_disable && !f.kernel_memory);
        assert_eq!(
            f.warnings(),
            [
                "WARNING: IPv4 forwarding is disabled",
                "WARNING: bridge-nf-call-iptables is disabled",
                "WARNING: bridge-nf-call-ip6tables is disabled",
            ]
        );
        Ok(())
    }

    #[test]
    fn mountpoints_are_unescaped() {
        let m = v1_mountpoints(
            "50 25 0:40 / /a\\040b rw - cgroup cgroup rw,memory\n51 25 0:41 / /c rw - cgroup2 none rw\n",
        );
        assert_eq!(m.get("memory"), Some(&PathBuf::from("/a b")));
        assert_eq!(m.len(), 1, "{m:?}"); // the cgroup2 mount is not a v1 hierarchy
    }

    /// This host, checked file by file against what the probe says.
    #[test]
    fn the_probe_reads_this_host() {
        let f = Features::probe(&Sources::host());
        if f.cgroup_v2 {
            assert!(!f.oom_kill_disable);
            return;
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let memory = v1_mountpoints(&mountinfo).get("memory").cloned();
        assert_eq!(
            f.oom_kill_disable,
            memory.is_some_and(|m| m.join("memory.oom_control").exists())
        );
    }
}
