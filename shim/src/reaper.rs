//! Reaping: the shim is a subreaper and one thread waits for every child.
//!
//! Commands the shim runs itself (runtime binaries, the publish binary) are spawned
//! through [`Reaper::spawn`], which registers the pid under the same lock the reaping
//! thread takes, so their status goes to the caller. Every other exit (container init
//! and exec processes, re-parented to the shim) goes to the exit handler.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
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
    spawned: Condvar,
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
        let reaper = Arc::new(Reaper {
            inner: Mutex::new(Inner::default()),
            spawned: Condvar::new(),
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
        loop {
            // Peek first (WNOWAIT), then reap that pid once no in-process operation
            // runs: such an operation may be waiting for that very child itself.
            let peeked = waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
            let status = match peeked {
                Ok(s) => match s.pid() {
                    Some(pid) => {
                        let _gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
                        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                            Ok(s) => Ok(s),
                            // Reaped by the in-process operation meanwhile.
                            Err(Errno::ECHILD) => continue,
                            Err(e) => Err(e),
                        }
                    }
                    None => continue,
                },
                Err(e) => Err(e),
            };
            match status {
                Ok(status) => {
                    let Some((pid, code)) = status_code(status) else {
                        continue;
                    };
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
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    // No children right now: sleep until one is spawned (orphans that
                    // re-parent to us always come from a child we spawned).
                    let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = self.spawned.wait_timeout(inner, Duration::from_millis(200));
                }
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
        drop(inner);
        self.spawned.notify_all();
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
