//! A pod that shares one PID namespace among its containers needs a PID 1 in it that
//! outlives each container and reaps the orphans they leave: berth's own minimal init,
//! not a pause image.
//!
//! The init is a mode of berthd's executable ([`main`], run as `berthd pod-init`): it
//! unshares a PID namespace, forks its PID 1, prints that process's host pid and exits.
//! PID 1 only reaps children; berthd kills it with SIGKILL when the pod stops, which
//! kills every process left in the namespace. The namespace is pinned under the state
//! dir like the pod's others, and the init's pid kept in the pod dir.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::namespaces;
use crate::EngineError;

use super::io_err;

/// The argument that selects the init mode of the executable.
pub const ARG: &str = "pod-init";
/// Where the init's host pid is kept, in the pod dir.
const PID_FILE: &str = "pod-init.pid";

/// The init mode: never returns.
pub fn main() -> ! {
    use nix::sched::{unshare, CloneFlags};
    use nix::unistd::{fork, ForkResult};
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("pod-init: unsharing a PID namespace: {e}");
        std::process::exit(1);
    }
    // SAFETY: this process was just exec'd and runs no other thread, so the child may
    // run arbitrary code.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            println!("{child}");
            std::process::exit(0);
        }
        Ok(ForkResult::Child) => reap_forever(),
        Err(e) => {
            eprintln!("pod-init: fork: {e}");
            std::process::exit(1);
        }
    }
}

/// PID 1: detached from berthd's stdio and session, reaps every child it inherits.
fn reap_forever() -> ! {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = nix::unistd::setsid();
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let _ = chld.thread_block();
    loop {
        let _ = chld.wait();
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// Starts the pod's init with `program`, pins its PID namespace at `pin` and keeps its
/// pid in `pod_dir`. On failure nothing stays behind.
pub fn start(program: &Path, pin: &Path, pod_dir: &Path) -> Result<(), EngineError> {
    let mut child = Command::new(program)
        .arg(ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err("start the pod init", program))?;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    let status = child
        .wait()
        .map_err(io_err("wait for the pod init", program))?;
    let pid: i32 = match out.trim().parse() {
        Ok(pid) if status.success() => pid,
        _ => {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            return Err(EngineError::broken(
                "pod",
                format!(
                    "the pod init ({}) failed: {status}: {}",
                    program.display(),
                    err.trim()
                ),
            ));
        }
    };
    let pinned = (|| {
        namespaces::pin_path(&PathBuf::from(format!("/proc/{pid}/ns/pid")), pin)?;
        std::fs::write(pod_dir.join(PID_FILE), pid.to_string())
            .map_err(io_err("write", pod_dir.join(PID_FILE)))
    })();
    if let Err(e) = pinned {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = namespaces::remove_pin(pin);
        return Err(e);
    }
    Ok(())
}

/// Kills the pod's init (and with it every process left in its PID namespace), if it
/// is still the one pinned at `pin`. Idempotent.
pub fn stop(pin: &Path, pod_dir: &Path) {
    if let Some(pid) = live_pid(pin, pod_dir) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pod_dir.join(PID_FILE));
}

/// The pid of the pod's init while it lives: the pid it recorded, still in the PID
/// namespace pinned at `pin` (a reused pid is not ours).
pub fn live_pid(pin: &Path, pod_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pod_dir.join(PID_FILE)).ok()?;
    let pid = text.trim().parse::<i32>().ok()?;
    match (
        std::fs::metadata(format!("/proc/{pid}/ns/pid")),
        std::fs::metadata(pin),
    ) {
        (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev() => Some(pid),
        _ => None,
    }
}
