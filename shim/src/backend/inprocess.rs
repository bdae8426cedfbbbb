//! The built-in runtime (crate `berth-runtime`) called in-process: no runtime binary
//! is forked per operation; the container init is forked from the shim itself.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_runtime::{CreateOptions, Created, ExecOptions};
use nix::sys::signal::Signal;

use super::{ProcStdio, Runtime, RuntimeError, RuntimeState, Spawn};
use crate::reaper::Reaper;

/// `berth-runtime` as a library, rooted at a state directory.
pub struct BuiltIn {
    runtime: berth_runtime::Runtime,
    reaper: Arc<Reaper>,
    /// Created containers, kept until Start to learn whether the init exec'd.
    created: Mutex<HashMap<String, Created>>,
    /// Each container's last exec process, as JSON and parsed: a health check sends
    /// the same process every interval, and parsing it (oci-spec goes through
    /// serde_json values) was the shim's largest cost of its own per check.
    parsed: Mutex<HashMap<String, (Vec<u8>, oci_spec::runtime::Process)>>,
}

/// The name Create options (`BinaryName`) use for the built-in runtime.
pub const NAME: &str = "berth";

impl BuiltIn {
    pub fn new(root: &Path, reaper: Arc<Reaper>) -> BuiltIn {
        BuiltIn {
            runtime: berth_runtime::Runtime::new(root),
            reaper,
            created: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The exec process `json` of container `id`, parsed (or as parsed last time).
    fn process(&self, id: &str, json: &[u8]) -> Result<oci_spec::runtime::Process, RuntimeError> {
        let lock = || self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((last, p)) = lock().get(id) {
            if last.as_slice() == json {
                return Ok(p.clone());
            }
        }
        let p: oci_spec::runtime::Process =
            serde_json::from_slice(json).map_err(|e| self.err("exec", id, e))?;
        lock().insert(id.to_string(), (json.to_vec(), p.clone()));
        Ok(p)
    }

    fn err(&self, op: &'static str, id: &str, e: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::Failed {
            runtime: NAME.into(),
            op,
            id: id.to_string(),
            message: e.to_string(),
        }
    }
}

/// The three fds for the process: ours or /dev/null.
fn stdio_fds(stdio: ProcStdio) -> std::io::Result<[OwnedFd; 3]> {
    let null = || -> std::io::Result<OwnedFd> {
        Ok(OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?,
        ))
    };
    Ok([
        stdio.stdin.map_or_else(null, Ok)?,
        stdio.stdout.map_or_else(null, Ok)?,
        stdio.stderr.map_or_else(null, Ok)?,
    ])
}

impl Runtime for BuiltIn {
    fn name(&self) -> &str {
        NAME
    }

    fn create(&self, bundle: &Path, spawn: Spawn<'_>) -> Result<i32, RuntimeError> {
        let id = spawn.id;
        let fds = stdio_fds(spawn.stdio).map_err(|e| self.err("create", id, e))?;
        let opts = CreateOptions {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            console_socket: spawn.console_socket.map(Path::to_path_buf),
            pid_file: Some(spawn.pid_file.clone()),
            stdio: Some([fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()]),
            ..CreateOptions::default()
        };
        let created = {
            let _gate = self.reaper.gate();
            self.runtime.create(&opts)
        }
        .map_err(|e| self.err("create", id, e))?;
        drop(fds);
        let pid = created.pid;
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), created);
        Ok(pid)
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let created = self
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        {
            let _gate = self.reaper.gate();
            self.runtime.start(id)
        }
        .map_err(|e| self.err("start", id, e))?;
        if let Some(c) = created {
            c.wait_exec().map_err(|e| self.err("start", id, e))?;
        }
        Ok(())
    }

    fn exec_leaves_files(&self) -> bool {
        false
    }

    /// The process JSON is parsed as given and the pid returned: no process file, no
    /// pid file (an ext4 inode made and removed for each, every exec, every probe).
    fn exec(
        &self,
        process: &[u8],
        _process_file: &Path,
        spawn: Spawn<'_>,
    ) -> Result<i32, RuntimeError> {
        let id = spawn.id;
        let proc = self.process(id, process)?;
        let fds = stdio_fds(spawn.stdio).map_err(|e| self.err("exec", id, e))?;
        let opts = ExecOptions {
            process: Some(proc),
            console_socket: spawn.console_socket.map(Path::to_path_buf),
            pid_file: None,
            stdio: Some([fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()]),
            // The supervisor starts an exec only while the init runs unpaused.
            init_running: true,
            ..ExecOptions::default()
        };
        let exec = {
            let _gate = self.reaper.gate();
            self.runtime.exec(id, &opts)
        }
        .map_err(|e| self.err("exec", id, e))?;
        drop(fds);
        Ok(exec.pid)
    }

    fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let sig = i32::try_from(signal)
            .ok()
            .and_then(|s| Signal::try_from(s).ok())
            .ok_or_else(|| self.err("kill", id, format!("invalid signal {signal}")))?;
        self.runtime
            .kill(id, sig, all)
            .map_err(|e| self.err("kill", id, e))
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let _gate = self.reaper.gate();
        self.runtime
            .delete(id, force)
            .map_err(|e| self.err("delete", id, e))
    }

    fn state(&self, id: &str) -> Result<RuntimeState, RuntimeError> {
        let st = self
            .runtime
            .state(id)
            .map_err(|e| self.err("state", id, e))?;
        Ok(RuntimeState {
            status: st.status.to_string(),
            pid: st.pid,
        })
    }

    fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.runtime.pause(id).map_err(|e| self.err("pause", id, e))
    }

    fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.runtime
            .resume(id)
            .map_err(|e| self.err("resume", id, e))
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, RuntimeError> {
        self.runtime.ps(id).map_err(|e| self.err("ps", id, e))
    }

    fn stats(&self, id: &str) -> Result<berth_runtime::Stats, RuntimeError> {
        self.runtime.stats(id).map_err(|e| self.err("stats", id, e))
    }

    fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), RuntimeError> {
        let res: oci_spec::runtime::LinuxResources = serde_json::from_slice(resources_json)
            .map_err(|e| self.err("update", id, format!("resources are not OCI JSON: {e}")))?;
        self.runtime
            .update(id, &res)
            .map_err(|e| self.err("update", id, e))
    }
}
