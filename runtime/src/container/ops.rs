//! start, state, list, kill, delete, pause, resume, ps, stats, run.

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::create::{CreateOptions, Created};
use super::plan;
use super::Runtime;
use crate::cgroups::Stats;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{self, OciState, Saved, Status};

fn bad(id: &str, status: Status, wanted: &'static str) -> Error {
    Error::BadStatus {
        id: id.into(),
        status: status.to_string(),
        wanted,
    }
}

impl Runtime {
    fn load(&self, id: &str) -> Result<(Saved, Status)> {
        let saved = state::load(&self.root, id)?;
        let st = state::status(&self.root, &saved);
        Ok((saved, st))
    }

    /// Releases a created container's init into the user's process.
    pub fn start(&self, id: &str) -> Result<()> {
        let (saved, st) = self.load(id)?;
        if st != Status::Created {
            return Err(bad(id, st, "only a created container can be started"));
        }
        let fifo = state::fifo_path(&self.root, id);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags_nonblock()
            .open(&fifo)
            .map_err(|e| Error::io("opening", &fifo, e))?;
        f.write_all(b"0")
            .map_err(|e| Error::io("writing", &fifo, e))?;
        drop(f);
        fs::remove_file(&fifo).map_err(|e| Error::io("removing", &fifo, e))?;
        if let Ok(spec) = plan::load_spec(&saved.bundle) {
            let post = plan::hooks(&spec, "poststart");
            if !post.is_empty() {
                let body = self.state_json(&saved, Status::Running);
                if let Err(e) = hooks::run("poststart", &post, body.as_bytes()) {
                    tracing::warn!("{e}");
                }
            }
        }
        Ok(())
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str) -> Result<OciState> {
        let saved = state::load(&self.root, id)?;
        Ok(state::oci_state(&self.root, &saved))
    }

    /// The states of every container under the root.
    pub fn list(&self) -> Result<Vec<OciState>> {
        let mut out = Vec::new();
        for id in state::list_ids(&self.root)? {
            if let Ok(s) = self.state(&id) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Sends `sig` to the init, or with `all` to every process of the container.
    pub fn kill(&self, id: &str, sig: Signal, all: bool) -> Result<()> {
        let (saved, st) = self.load(id)?;
        if st == Status::Stopped && !all {
            return Err(bad(id, st, "it cannot be signalled"));
        }
        if all {
            for p in saved.cgroup.pids()? {
                let _ = kill(Pid::from_raw(p), sig);
            }
            if st == Status::Paused && sig == Signal::SIGKILL {
                saved.cgroup.freeze(false)?;
            }
            return Ok(());
        }
        kill(Pid::from_raw(saved.pid), sig)
            .map_err(|e| Error::sys(format!("kill {} {sig}", saved.pid), e))
    }

    /// Deletes a container: stopped (or created), or anything with `force`.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let (saved, st) = self.load(id)?;
        match st {
            Status::Stopped | Status::Created => {}
            _ if force => {}
            _ => return Err(bad(id, st, "stop it first or use --force")),
        }
        if st != Status::Stopped {
            for p in saved.cgroup.pids().unwrap_or_default() {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(saved.pid), Signal::SIGKILL);
            if st == Status::Paused {
                let _ = saved.cgroup.freeze(false);
            }
            wait_gone(&saved)?;
        }
        self.execs.forget(id);
        let mut errs = Vec::new();
        if let Err(e) = saved.cgroup.remove() {
            errs.push(e.to_string());
        }
        if let Ok(spec) = plan::load_spec(&saved.bundle) {
            let post = plan::hooks(&spec, "poststop");
            if !post.is_empty() {
                let body = self.state_json(&saved, Status::Stopped);
                if let Err(e) = hooks::run("poststop", &post, body.as_bytes()) {
                    tracing::warn!("{e}");
                }
            }
        }
        let dir = state::dir(&self.root, id);
        if let Err(e) = fs::remove_dir_all(&dir) {
            errs.push(format!("removing {}: {e}", dir.display()));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::State {
                id: id.into(),
                msg: errs.join("; "),
            })
        }
    }

    /// Freezes every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let (saved, st) = self.load(id)?;
        if st != Status::Running && st != Status::Created {
            return Err(bad(id, st, "only a running container can be paused"));
        }
        saved.cgroup.freeze(true)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let (saved, st) = self.load(id)?;
        if st != Status::Paused {
            return Err(bad(id, st, "only a paused container can be resumed"));
        }
        saved.cgroup.freeze(false)
    }

    /// Host pids of the container's processes.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let saved = state::load(&self.root, id)?;
        saved.cgroup.pids()
    }

    /// Writes new cgroup limits for a created or running container (`runc update
    /// --resources`).
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let saved = state::load(&self.root, id)?;
        saved.cgroup.apply(resources)
    }

    /// cgroup usage of the container.
    pub fn stats(&self, id: &str) -> Result<Stats> {
        let saved = state::load(&self.root, id)?;
        saved.cgroup.stats()
    }

    /// create + start, then (unless `detach`) wait for the process and delete the
    /// container. Returns the exit code (128+signal when killed).
    pub fn run(&self, o: &CreateOptions, detach: bool) -> Result<i32> {
        let created = self.create(o)?;
        if let Err(e) = self.start_created(&created) {
            let _ = self.delete(&o.id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let code = wait_exit(created.pid);
        self.delete(&o.id, true)?;
        code
    }

    fn start_created(&self, c: &Created) -> Result<()> {
        self.start(&c.id)?;
        c.wait_exec()
    }
}

/// Waits for a child of ours and maps its status to an exit code.
pub(crate) fn wait_exit(pid: i32) -> Result<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys(format!("waiting for {pid}"), e)),
        }
    }
}

fn wait_gone(saved: &Saved) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut nap = Duration::from_micros(100);
    loop {
        // Reap it if it is our child (run, tests); otherwise its parent does.
        let _ = waitpid(
            Pid::from_raw(saved.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        if state::proc_start_time(saved.pid) != Some(saved.pid_start) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::State {
                id: saved.id.clone(),
                msg: format!("pid {} did not exit after SIGKILL", saved.pid),
            });
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}
