//! Reaping: the shim is a subreaper and one thread reaps every child.
//!
//! The reaping thread sleeps until SIGCHLD: a signal handler writes a byte into a
//! self-pipe the thread polls, so an exit is noticed at once, with no polling interval
//! (and no stale "no children" sleep while an in-process runtime forks a container).
//!
//! Commands the shim runs itself (runtime binaries, the publish binary) are spawned
//! through [`Reaper::spawn`], which registers the pid under the same lock the reaping
//! thread takes, so their status goes to the caller. Every other exit (container init
//! and exec processes, re-parented to the shim) goes to the exit handler.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};

/// Called with (pid, exit status, time) for each exited child nobody waits on.
pub type ExitHandler = Box<dyn Fn(i32, u32, SystemTime) + Send + Sync>;

#[derive(Default)]
struct Inner {
    waiters: HashMap<i32, Sender<u32>>,
}

/// The shim's reaper.
pub struct Reaper {
    inner: Mutex<Inner>,
    /// Read end of the self-pipe the SIGCHLD handler writes to.
    wake: OwnedFd,
    /// Held by in-process runtime operations, which wait for their own helper
    /// children: the reaper only peeks while it is held, and reaps after.
    gate: Mutex<()>,
}

/// Errors of running a command.
#[derive(Debug, thiserror::Error)]
pub enum ReapError {
    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("lost the exit status of {program}")]
    Lost { program: String },
}

/// Write end of the reaper's self-pipe, or -1: read by the SIGCHLD handler.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The pid that installed the handler: a forked child that has not exec'd yet (the
/// runtime's helpers) inherits the handler but must not write to a reused fd number.
static WAKE_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_sigchld(_: libc::c_int) {
    // SAFETY: only async-signal-safe calls (getpid, write) and errno saved/restored.
    unsafe {
        let fd = WAKE_FD.load(Ordering::Relaxed);
        if fd < 0 || libc::getpid() != WAKE_PID.load(Ordering::Relaxed) {
            return;
        }
        let errno = *libc::__errno_location();
        // A full pipe already means "wake up"; the result does not matter.
        let _ = libc::write(fd, [1u8].as_ptr().cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// Creates the self-pipe and installs the SIGCHLD handler; once per process.
fn install_wakeup() -> std::io::Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    if WAKE_FD
        .compare_exchange(-1, w.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Err(std::io::Error::other(
            "a reaper is already running in this process",
        ));
    }
    WAKE_PID.store(std::process::id() as i32, Ordering::SeqCst);
    // The handler writes to this fd for the rest of the process's life.
    std::mem::forget(w);
    let action = SigAction::new(
        SigHandler::Handler(on_sigchld),
        SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: the handler only does async-signal-safe work (see on_sigchld).
    unsafe { sigaction(Signal::SIGCHLD, &action) }?;
    Ok(r)
}

/// Blocks SIGCHLD in the calling thread and the threads it starts later, so that
/// only the reaping thread (which unblocks it) is interrupted by it. Optional: call it
/// first thing in `main` of a process that reaps.
pub fn block_sigchld() -> nix::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.thread_block()
}

/// Exit status as the shim API reports it: the code, or 128 + signal.
fn status_code(status: WaitStatus) -> Option<(i32, u32)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code as u32)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as u32)),
        _ => None,
    }
}

/// Marks the process as a child subreaper: orphaned descendants come to it.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Reaper {
    /// Starts the reaping thread; `on_exit` receives exits of processes not spawned
    /// through [`Reaper::spawn`].
    pub fn start(on_exit: ExitHandler) -> std::io::Result<Arc<Reaper>> {
        let wake = install_wakeup()?;
        let reaper = Arc::new(Reaper {
            inner: Mutex::new(Inner::default()),
            wake,
            gate: Mutex::new(()),
        });
        let r = Arc::clone(&reaper);
        std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(64 * 1024)
            .spawn(move || r.run(on_exit))?;
        Ok(reaper)
    }

    fn run(&self, on_exit: ExitHandler) {
        let mut set = SigSet::empty();
        set.add(Signal::SIGCHLD);
        let _ = set.thread_unblock();
        loop {
            // Empty the pipe before scanning: a SIGCHLD after the scan leaves a byte
            // behind, so the poll below cannot sleep through an exit.
            self.drain_wakeups();
            while let Some((pid, code)) = self.reap_one() {
                let now = SystemTime::now();
                let waiter = {
                    let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                    inner.waiters.remove(&pid)
                };
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(code);
                    }
                    None => on_exit(pid, code, now),
                }
            }
            let mut fds = [PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::error!("reaper: polling the SIGCHLD pipe: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    }

    fn drain_wakeups(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(self.wake.as_raw_fd(), &mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }

    /// Reaps one exited child if there is one: (pid, status code). Peeks first
    /// (WNOWAIT), then reaps that pid once no in-process operation runs: such an
    /// operation may be waiting for that very child itself.
    fn reap_one(&self) -> Option<(i32, u32)> {
        loop {
            let peeked = waitid(
                Id::All,
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG,
            );
            let pid = match peeked {
                Ok(s) => s.pid()?,
                Err(Errno::EINTR) => continue,
                // ECHILD: no children at all.
                Err(_) => return None,
            };
            let _gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(status) => {
                    if let Some(exit) = status_code(status) {
                        return Some(exit);
                    }
                }
                // Reaped by the in-process operation meanwhile.
                Err(Errno::ECHILD) | Err(Errno::EINTR) => {}
                Err(_) => return None,
            }
        }
    }

    /// Holds off reaping while an in-process runtime operation waits for its own
    /// children.
    pub fn gate(&self) -> std::sync::MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `cmd`; its exit status arrives on the returned receiver. Never call
    /// `wait` on the returned child.
    pub fn spawn(&self, cmd: &mut Command) -> Result<(Child, Receiver<u32>), ReapError> {
        let (tx, rx) = channel();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn().map_err(|source| ReapError::Spawn {
            program: program(cmd),
            source,
        })?;
        inner.waiters.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Runs `cmd` to completion and returns its exit status.
    pub fn status(&self, cmd: &mut Command) -> Result<u32, ReapError> {
        let (_child, rx) = self.spawn(cmd)?;
        rx.recv().map_err(|_| ReapError::Lost {
            program: program(cmd),
        })
    }

    /// Runs `cmd` with stdout and stderr captured; returns (status, stdout, stderr).
    pub fn output(&self, cmd: &mut Command) -> Result<(u32, Vec<u8>, Vec<u8>), ReapError> {
        use std::io::Read;
        use std::process::Stdio;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, rx) = self.spawn(cmd)?;
        let mut err_pipe = child.stderr.take();
        let err_thread = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = err_pipe.as_mut() {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            });
        let mut out = Vec::new();
        if let Some(mut p) = child.stdout.take() {
            let _ = p.read_to_end(&mut out);
        }
        let err = match err_thread {
            Ok(t) => t.join().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let code = rx.recv().map_err(|_| ReapError::Lost {
            program: program(cmd),
        })?;
        Ok((code, out, err))
    }
}

fn program(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}
