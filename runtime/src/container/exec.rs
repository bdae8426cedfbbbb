//! `exec`: a new process in a running container's namespaces and cgroup.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::Process;

use super::create::write_pid_file;
use super::init::exec_main;
use super::ops::wait_exit;
use super::plan;
use super::Runtime;
use crate::error::{Error, Result};
use crate::namespaces::NsPlan;
use crate::process::ProcPlan;
use crate::seccomp;
use crate::state::{self, Status};
use crate::sync::{self, Msg};

/// Options of `exec`.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    /// The process to run (from --process or built from the command line).
    pub process: Option<Process>,
    pub console_socket: Option<PathBuf>,
    pub console_fd: Option<RawFd>,
    pub pid_file: Option<PathBuf>,
    pub stdio: Option<[RawFd; 3]>,
    pub preserve_fds: u32,
    /// The caller supervises the container and knows its init runs, not paused (the
    /// shim refuses an exec otherwise): while this runtime has the container's exec
    /// base, state.json and the init's /proc status are not read again; the init is
    /// checked alive through a pidfd and config.json unchanged by its stamp.
    pub init_running: bool,
}

/// What every exec into one run of a container shares, derived from its state and
/// config.json: the spec's process, the compiled seccomp filter, the init's namespaces
/// and its cgroups' task files, open. Reading, parsing and compiling these for each
/// exec was most of an exec's cost in the shim (a health check every second).
pub(crate) struct ExecBase {
    /// The init (pid and start time) and config.json (inode, size, mtime) it was made
    /// from: a base is used only while all are the same.
    key: (i32, u64, FileStamp),
    process: Option<Process>,
    filter: Option<seccomp::Filter>,
    /// The namespaces the child joins, the pid namespace excepted: the forking thread
    /// joins that one (`pid_ns`) so that its child is born there, which saves the
    /// second fork an init needs to enter a pid namespace.
    ns: NsPlan,
    pid_ns: Option<OwnedFd>,
    cgroup_files: Vec<OwnedFd>,
    /// The state it was made from, and a pidfd of its init (`None` where the
    /// kernel has no pidfd_open): what an exec with `init_running` uses instead of
    /// reading them again.
    saved: state::Saved,
    init: Option<OwnedFd>,
}

impl ExecBase {
    /// Whether the init this base was made from still runs: its pidfd is not
    /// readable (a pidfd polls readable once the process exited).
    fn init_alive(&self) -> bool {
        let Some(fd) = &self.init else {
            return false;
        };
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 0
    }
}

/// A pidfd of `pid`, if the kernel has pidfd_open (5.3).
fn pidfd(pid: i32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a new descriptor pidfd_open returned, owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

type FileStamp = (u64, u64, i64, i64);

fn stamp(path: &std::path::Path) -> Result<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
    Ok((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The bases of the containers this runtime has exec'd into, dropped with the
/// container (or replaced when its init or config.json changes).
#[derive(Clone, Default)]
pub(crate) struct ExecBases(Arc<Mutex<HashMap<String, Arc<ExecBase>>>>);

impl std::fmt::Debug for ExecBases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecBases")
    }
}

impl ExecBases {
    fn get(&self, saved: &state::Saved) -> Result<Arc<ExecBase>> {
        let config = saved.bundle.join("config.json");
        let key = (saved.pid, saved.pid_start, stamp(&config)?);
        if let Some(b) = self.lock().get(&saved.id) {
            if b.key == key {
                return Ok(Arc::clone(b));
            }
        }
        let spec = plan::load_spec(&saved.bundle)?;
        let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(seccomp::build(s)?),
            None => None,
        };
        let mut ns = NsPlan::join_process(saved.pid)?;
        let pid_ns = ns
            .joins
            .iter()
            .position(|(f, _)| *f == CloneFlags::CLONE_NEWPID)
            .map(|i| ns.joins.remove(i).1);
        ns.pid = false;
        let init = pidfd(saved.pid);
        // The pidfd is of the init the state names only if it was still that process
        // once the pidfd was open (a pid reused since is another start time).
        let init = init.filter(|_| state::proc_start_time(saved.pid) == Some(saved.pid_start));
        let base = Arc::new(ExecBase {
            key,
            process: spec.process().clone(),
            filter,
            ns,
            pid_ns,
            cgroup_files: saved.cgroup.open_self_join()?,
            saved: saved.clone(),
            init,
        });
        self.lock().insert(saved.id.clone(), Arc::clone(&base));
        Ok(base)
    }

    /// The base of `id` while its init runs and config.json is unchanged, without
    /// reading the state: for a caller that knows the init runs.
    fn cached(&self, id: &str) -> Option<Arc<ExecBase>> {
        let base = Arc::clone(self.lock().get(id)?);
        let config = base.saved.bundle.join("config.json");
        let same = stamp(&config).ok() == Some(base.key.2) && base.init_alive();
        same.then_some(base)
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ExecBase>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The calling thread's pid namespace for children set to a container's, and put
/// back to its own on drop. Entering one's own active pid namespace is always allowed.
struct PidNsGuard;

fn own_pid_ns() -> Result<&'static OwnedFd> {
    static OWN: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = OWN.get() {
        return Ok(fd);
    }
    let path = std::path::Path::new("/proc/self/ns/pid");
    let f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    Ok(OWN.get_or_init(|| f.into()))
}

impl PidNsGuard {
    fn enter(fd: &OwnedFd) -> Result<Self> {
        own_pid_ns()?;
        setns(fd.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(|e| Error::sys("joining the pid namespace", e))?;
        Ok(PidNsGuard)
    }
}

impl Drop for PidNsGuard {
    fn drop(&mut self) {
        if let Ok(own) = own_pid_ns() {
            if let Err(e) = setns(own.as_fd(), CloneFlags::CLONE_NEWPID) {
                tracing::error!("putting back the pid namespace of this thread: {e}");
            }
        }
    }
}

/// A started exec'd process.
#[derive(Debug)]
pub struct Exec {
    pub pid: i32,
}

impl Exec {
    /// Waits for the process (it is our child) and returns its exit code.
    pub fn wait(&self) -> Result<i32> {
        wait_exit(self.pid)
    }
}

impl Runtime {
    /// Starts a process in the container; returns once it has exec'd.
    pub fn exec(&self, id: &str, o: &ExecOptions) -> Result<Exec> {
        let cached = if o.init_running {
            self.execs.cached(id)
        } else {
            None
        };
        let base = match cached {
            Some(base) => base,
            None => {
                let saved = state::load(&self.root, id)?;
                let st = state::status(&self.root, &saved);
                if st != Status::Running && st != Status::Created {
                    return Err(Error::BadStatus {
                        id: id.into(),
                        status: st.to_string(),
                        wanted: "exec needs a running container",
                    });
                }
                self.execs.get(&saved)?
            }
        };
        let saved = &base.saved;
        let process = match &o.process {
            Some(p) => p.clone(),
            None => base
                .process
                .clone()
                .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?,
        };
        let pplan = ProcPlan::from_spec(&process, base.filter.clone())?;
        let ns = &base.ns;
        let console: Option<OwnedFd> = match (&o.console_fd, &o.console_socket) {
            (Some(_), _) | (None, None) => None,
            (None, Some(p)) => Some(
                UnixStream::connect(p)
                    .map_err(|e| Error::io("connecting to the console socket", p, e))?
                    .into(),
            ),
        };
        let console_fd = o.console_fd.or(console.as_ref().map(|c| c.as_raw_fd()));
        if pplan.terminal && console_fd.is_none() {
            return Err(Error::InvalidSpec(
                "a terminal needs --console-socket".into(),
            ));
        }
        let cgroup_fds: Vec<RawFd> = base.cgroup_files.iter().map(|f| f.as_raw_fd()).collect();
        // The pid handshake is needed only when the child's pid is not the one fork
        // returns (no pid namespace joined by this thread) or the runtime writes it
        // into a v2 cgroup; otherwise the child joins its v1 cgroups itself and sends
        // nothing unless it fails: one wake-up of this thread per exec fewer.
        let handshake = base.pid_ns.is_none() || saved.cgroup.unified.is_some();
        let (ours, theirs) = sync::pair().map_err(|e| Error::sys("socketpair", e))?;
        // This thread's children are born in the container's pid namespace until the
        // guard puts it back.
        let in_pid_ns = match &base.pid_ns {
            Some(fd) => Some(PidNsGuard::enter(fd)?),
            None => None,
        };
        // SAFETY: the child only joins the container and ends in execve or _exit.
        let fork = unsafe { nix::unistd::fork() };
        if matches!(fork, Ok(ForkResult::Parent { .. }) | Err(_)) {
            drop(in_pid_ns);
        }
        let fork = fork.map_err(|e| Error::sys("fork", e))?;
        let first = match fork {
            ForkResult::Child => {
                drop(ours);
                if let Some(fds) = o.stdio {
                    for (t, fd) in fds.iter().enumerate() {
                        let _ = nix::unistd::dup2(*fd, t as RawFd);
                    }
                }
                exec_main(
                    ns,
                    &cgroup_fds,
                    &pplan,
                    (console_fd, o.preserve_fds),
                    &theirs,
                    handshake,
                )
            }
            ForkResult::Parent { child } => child.as_raw(),
        };
        drop(theirs);
        drop(console);
        let mut pid = if handshake { 0 } else { first };
        let result = loop {
            match ours.recv() {
                Ok(Some(Msg::Pid(p))) => {
                    // Born in the pid namespace, the child is the process; the pid it
                    // sends is the one it has there.
                    let p = if base.pid_ns.is_some() { first } else { p };
                    pid = p;
                    if p != first {
                        let _ = waitpid(Pid::from_raw(first), None);
                    }
                    if saved.cgroup.unified.is_some() {
                        if let Err(e) = saved.cgroup.add_pid(p) {
                            break Err(e);
                        }
                    }
                    if let Err(e) = ours.send(&Msg::Ok) {
                        break Err(Error::sys("sync", e));
                    }
                }
                Ok(None) => break Ok(()),
                Ok(Some(Msg::Error(m))) => break Err(Error::Init(m)),
                Ok(Some(m)) => break Err(Error::Init(format!("unexpected sync message {m:?}"))),
                Err(e) => break Err(Error::sys("sync", e)),
            }
        };
        if let Err(e) = result {
            for p in [pid, first] {
                if p > 0 {
                    let _ =
                        nix::sys::signal::kill(Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(p), None);
                }
            }
            return Err(e);
        }
        if pid == 0 {
            return Err(Error::Init(
                "the exec'd process never reported its pid".into(),
            ));
        }
        if let Some(pf) = &o.pid_file {
            write_pid_file(pf, pid)?;
        }
        Ok(Exec { pid })
    }
}
