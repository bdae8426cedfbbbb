//! `create`: state dir, cgroup, fork of the init, the sync protocol with it, state.json.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use super::init::init_main;
use super::plan::{self, PlanInput};
use super::Runtime;
use crate::cgroups::{self, CgroupPaths};
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{self, Saved};
use crate::sync::{self, Channel, Msg};

/// Options of `create` (runc's flags).
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (in-process callers); wins over the path.
    pub console_fd: Option<RawFd>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    /// fds to become the container's stdin, stdout, stderr (default: ours).
    pub stdio: Option<[RawFd; 3]>,
    pub preserve_fds: u32,
}

/// A created container, waiting for `start`.
pub struct Created {
    pub id: String,
    pub pid: i32,
    /// Open until the init execs (end-of-file) or reports a late error.
    pub(crate) chan: Channel,
}

impl Created {
    /// Waits for the container process (a child of the caller) and returns its exit code.
    pub fn wait(&self) -> Result<i32> {
        super::ops::wait_exit(self.pid)
    }

    /// After `start`: waits until the process has exec'd, or returns the init's error.
    pub fn wait_exec(&self) -> Result<()> {
        match self.chan.recv() {
            Ok(None) => Ok(()),
            Ok(Some(Msg::Error(m))) => Err(Error::Init(m)),
            Ok(Some(m)) => Err(Error::Init(format!("unexpected sync message {m:?}"))),
            Err(e) => Err(Error::sys("sync", e)),
        }
    }
}

/// Undoes a half-done create unless disarmed.
struct Cleanup<'a> {
    root: &'a Path,
    id: &'a str,
    cgroup: Option<CgroupPaths>,
    pids: Vec<i32>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for &p in &self.pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
        if let Some(cg) = &self.cgroup {
            cg.remove_quietly();
        }
        let _ = fs::remove_dir_all(state::dir(self.root, self.id));
    }
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

impl Runtime {
    /// Creates the container: the init is set up and waits for [`Runtime::start`].
    pub fn create(&self, o: &CreateOptions) -> Result<Created> {
        state::validate_id(&o.id)?;
        let bundle = fs::canonicalize(&o.bundle)
            .map_err(|e| Error::io("resolving the bundle", &o.bundle, e))?;
        let spec = plan::load_spec(&bundle)?;
        let rootfs = plan::rootfs_path(&bundle, &spec)?;
        fs::create_dir_all(&self.root)
            .map_err(|e| Error::io("creating the state root", &self.root, e))?;
        let dir = state::dir(&self.root, &o.id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(o.id.clone()))
            }
            Err(e) => return Err(Error::io("creating the state dir", dir, e)),
        }
        let mut cleanup = Cleanup {
            root: &self.root,
            id: &o.id,
            cgroup: None,
            pids: Vec::new(),
            armed: true,
        };
        let fifo = state::fifo_path(&self.root, &o.id);
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
            .map_err(|e| Error::sys(format!("creating {}", fifo.display()), e))?;

        let linux = spec.linux().clone().unwrap_or_default();
        let cg_path = linux
            .cgroups_path()
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| cgroups::default_path(&o.id));
        if cg_path
            .to_str()
            .is_some_and(|s| s.contains(':') && !s.starts_with('/'))
        {
            return Err(Error::Unsupported(format!(
                "systemd cgroupsPath {:?} (slice:prefix:name); the systemd cgroup driver",
                cg_path.display()
            )));
        }
        let cg = CgroupPaths::create(&cg_path)?;
        cleanup.cgroup = Some(cg.clone());
        if let Some(res) = linux.resources() {
            cg.apply(res)?;
        }

        let console: Option<OwnedFd> = match (&o.console_fd, &o.console_socket) {
            (Some(_), _) | (None, None) => None,
            (None, Some(p)) => Some(
                UnixStream::connect(p)
                    .map_err(|e| Error::io("connecting to the console socket", p, e))?
                    .into(),
            ),
        };
        let console_fd = o.console_fd.or(console.as_ref().map(|c| c.as_raw_fd()));
        let cgroup_files = cg.open_self_join()?;
        let init_plan = plan::build(PlanInput {
            spec: &spec,
            rootfs: rootfs.clone(),
            cgroup: cg.clone(),
            fifo: fifo.clone(),
            console: console_fd,
            stdio: o.stdio,
            no_pivot: o.no_pivot,
            preserve_fds: o.preserve_fds,
            cgroup_fds: cgroup_files.iter().map(|f| f.as_raw_fd()).collect(),
        })?;
        let needs_state = !init_plan.create_container_hooks.is_empty()
            || !init_plan.start_container_hooks.is_empty();

        let (ours, theirs) = sync::pair().map_err(|e| Error::sys("socketpair", e))?;
        // SAFETY: the child only runs the init (its own copy of memory) and ends in
        // execve or _exit; the runtime library keeps no locks across this call.
        let fork = unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork", e))?;
        let first = match fork {
            ForkResult::Child => {
                drop(ours);
                init_main(&init_plan, &theirs)
            }
            ForkResult::Parent { child } => child.as_raw(),
        };
        drop(theirs);
        drop(console);
        drop(cgroup_files);
        cleanup.pids.push(first);

        let mut saved = Saved {
            id: o.id.clone(),
            pid: 0,
            pid_start: 0,
            bundle: bundle.clone(),
            rootfs,
            created: now_rfc3339(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup: cg,
            owner: String::new(),
        };
        loop {
            match ours
                .recv()
                .map_err(|e| Error::sys("sync with the init", e))?
            {
                Some(Msg::WriteMaps) => {
                    crate::namespaces::write_maps(first, &init_plan.ns)?;
                    ours.send(&Msg::Ok).map_err(|e| Error::sys("sync", e))?;
                }
                Some(Msg::Pid(p)) => {
                    if p != first {
                        cleanup.pids.insert(0, p);
                        let _ = waitpid(Pid::from_raw(first), None);
                        cleanup.pids.retain(|&x| x != first);
                    }
                    saved.pid = p;
                    saved.pid_start = state::proc_start_time(p).unwrap_or(0);
                    if saved.cgroup.unified.is_some() {
                        saved.cgroup.add_pid(p)?;
                    }
                    ours.send(&Msg::Ok).map_err(|e| Error::sys("sync", e))?;
                    if needs_state {
                        let body = self.state_json(&saved, state::Status::Creating);
                        ours.send(&Msg::Text(body))
                            .map_err(|e| Error::sys("sync", e))?;
                    }
                }
                Some(Msg::RunHooks) => {
                    let body = self.state_json(&saved, state::Status::Creating);
                    hooks::run("prestart", &plan::hooks(&spec, "prestart"), body.as_bytes())?;
                    hooks::run(
                        "createRuntime",
                        &plan::hooks(&spec, "createRuntime"),
                        body.as_bytes(),
                    )?;
                    ours.send(&Msg::Ok).map_err(|e| Error::sys("sync", e))?;
                }
                Some(Msg::Ready) => break,
                Some(Msg::Error(m)) => return Err(Error::Init(m)),
                Some(m) => return Err(Error::Init(format!("unexpected sync message {m:?}"))),
                None => return Err(Error::Init("the init exited before it was ready".into())),
            }
        }
        state::save(&self.root, &saved)?;
        if let Some(pf) = &o.pid_file {
            write_pid_file(pf, saved.pid)?;
        }
        cleanup.armed = false;
        Ok(Created {
            id: o.id.clone(),
            pid: saved.pid,
            chan: ours,
        })
    }

    pub(crate) fn state_json(&self, saved: &Saved, status: state::Status) -> String {
        let mut st = state::oci_state(&self.root, saved);
        st.status = status;
        st.pid = saved.pid;
        serde_json::to_string(&st).unwrap_or_default()
    }
}

/// Writes a pid file atomically (runc's --pid-file).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp-berth");
    fs::write(&tmp, pid.to_string()).map_err(|e| Error::io("writing the pid file", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("writing the pid file", path, e))
}
