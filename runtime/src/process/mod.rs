//! The container process: its credentials, capabilities, limits, seccomp and exec.

pub mod caps;
pub mod rlimits;
pub mod tty;

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Process;

use crate::error::{Error, Result};
use crate::rootfs::paths::cstr;
use crate::seccomp::Filter;

/// Everything needed to turn the init into the user's process, computed before fork.
#[derive(Debug)]
pub struct ProcPlan {
    pub args: Vec<String>,
    pub env: Vec<CString>,
    pub path_var: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: caps::CapMasks,
    pub no_new_privileges: bool,
    pub rlimits: Vec<rlimits::Rlimit>,
    pub seccomp: Option<Filter>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub oom_score_adj: Option<i32>,
}

fn cs(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

impl ProcPlan {
    pub fn from_spec(p: &Process, seccomp: Option<Filter>) -> Result<Self> {
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::InvalidSpec("process.args is empty".into()));
        }
        let env: Vec<String> = p.env().clone().unwrap_or_default();
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .to_string();
        if !p.cwd().is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "process.cwd {} is not absolute",
                p.cwd().display()
            )));
        }
        for (k, v) in [
            ("apparmorProfile", p.apparmor_profile()),
            ("selinuxLabel", p.selinux_label()),
        ] {
            if v.as_deref().is_some_and(|s| !s.is_empty()) {
                tracing::warn!("process.{k} ignored: this kernel has no AppArmor/SELinux");
            }
        }
        Ok(ProcPlan {
            args,
            env: env.iter().map(|e| cs(e)).collect(),
            path_var,
            cwd: p.cwd().clone(),
            uid: p.user().uid(),
            gid: p.user().gid(),
            additional_gids: p.user().additional_gids().clone().unwrap_or_default(),
            umask: p.user().umask(),
            caps: caps::CapMasks::from_spec(p.capabilities().as_ref()),
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            rlimits: rlimits::from_spec(p.rlimits().as_deref().unwrap_or(&[]))?,
            seccomp,
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16)),
            oom_score_adj: p.oom_score_adj(),
        })
    }

    /// Resolves args[0] against PATH (in the container's root and cwd).
    pub fn resolve_exec(&self) -> Result<CString> {
        let a0 = &self.args[0];
        let found = if a0.contains('/') {
            Some(PathBuf::from(a0))
        } else {
            self.path_var
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(d).join(a0))
                .find(|p| is_executable(p))
        };
        // The messages are runc's (Go's exec.LookPath): engines read them to tell a
        // missing command (exit 127) from one that cannot be invoked (126).
        match found {
            Some(p) if is_executable(&p) => Ok(cstr(&p)),
            Some(p) => match std::fs::metadata(&p) {
                Err(e) => Err(Error::Init(format!(
                    "exec: {a0:?}: stat {}: {}",
                    p.display(),
                    io_text(&e)
                ))),
                Ok(_) => Err(Error::Init(format!("exec: {a0:?}: permission denied"))),
            },
            None => Err(Error::Init(format!(
                "exec: {a0:?}: executable file not found in $PATH"
            ))),
        }
    }

    /// Writes oom_score_adj with a clear error when lowering it is not allowed.
    pub fn set_oom_score_adj(&self) -> Result<()> {
        let Some(v) = self.oom_score_adj else {
            return Ok(());
        };
        match std::fs::write("/proc/self/oom_score_adj", v.to_string()) {
            Ok(()) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EACCES)
                    || e.raw_os_error() == Some(libc::EPERM) =>
            {
                let cur = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
                Err(Error::Init(format!(
                    "oomScoreAdj {v} is below the current {} and lowering it needs CAP_SYS_RESOURCE",
                    cur.trim()
                )))
            }
            Err(e) => Err(Error::io("writing", "/proc/self/oom_score_adj", e)),
        }
    }

    /// umask, user, capabilities, no_new_privs, seccomp, then execve. Returns only on error.
    pub fn finalize_and_exec(&self, exe: &CString) -> Error {
        let mut env = self.env.clone();
        if !self.env.iter().any(|e| e.as_bytes().starts_with(b"HOME=")) {
            env.push(cs(&format!("HOME={}", home_of(self.uid))));
        }
        match self.finalize() {
            Ok(()) => {}
            Err(e) => return e,
        }
        let argv: Vec<CString> = self.args.iter().map(|a| cs(a)).collect();
        let e = nix::unistd::execve(exe, &argv, &env)
            .err()
            .unwrap_or(Errno::EINVAL);
        Error::sys(format!("exec {:?}", self.args[0]), e)
    }

    fn finalize(&self) -> Result<()> {
        if let Some(m) = self.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m as libc::mode_t));
        }
        if !self.no_new_privileges {
            // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we have it.
            if let Some(f) = &self.seccomp {
                f.load()?;
            }
        }
        caps::drop_bounding(&self.caps)?;
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
        let gids: Vec<Gid> = self
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        match setgroups(&gids) {
            Ok(()) => {}
            // setgroups is denied in user namespaces mapped without it: fine if we need none.
            Err(Errno::EPERM) if gids.is_empty() => {}
            Err(e) => return Err(Error::sys("setgroups", e)),
        }
        let g = Gid::from_raw(self.gid);
        setresgid(g, g, g).map_err(|e| Error::sys(format!("setting gid {}", self.gid), e))?;
        let u = Uid::from_raw(self.uid);
        setresuid(u, u, u).map_err(|e| Error::sys(format!("setting uid {}", self.uid), e))?;
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
        caps::set(&self.caps)?;
        if self.no_new_privileges {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(Error::sys("setting no_new_privs", Errno::last()));
            }
            if let Some(f) = &self.seccomp {
                f.load()?;
            }
        }
        Ok(())
    }
}

/// An I/O error as Go prints it: the lower-case strerror text, without Rust's
/// " (os error N)".
fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

fn is_executable(p: &Path) -> bool {
    let c = cstr(p);
    // SAFETY: access reads a valid NUL-terminated path.
    let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
    ok && std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

/// Marks every fd from `first` up close-on-exec.
pub fn cloexec_from(first: u32) {
    // SAFETY: close_range with the CLOEXEC flag only sets flags on our own fds.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// The home directory of `uid` in the container's /etc/passwd, "/" when it has none
/// (runc sets HOME this way when the spec's env lacks it).
fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 7 && f[2].parse() == Ok(uid) && !f[5].is_empty())
                    .then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into())
}
