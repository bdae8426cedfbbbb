//! Container runtimes behind one trait.
//!
//! [`inprocess::BuiltIn`] calls the `berth-runtime` library in the shim's process (the
//! default); [`external::OciBinary`] drives any OCI runtime with runc's command line
//! (runc, crun, the `berth-runtime` binary) when Create's options name one.

pub mod external;
pub mod inprocess;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Errors of a runtime operation.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{runtime} {op} {id}: {message}")]
    Failed {
        runtime: String,
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("{runtime} {op} {id}: {source}")]
    Run {
        runtime: String,
        op: &'static str,
        id: String,
        source: crate::reaper::ReapError,
    },
    #[error("{runtime} {op} {id}: unexpected output: {message}")]
    Output {
        runtime: String,
        op: &'static str,
        id: String,
        message: String,
    },
}

/// The stdio a new process gets; `None` means /dev/null.
#[derive(Debug, Default)]
pub struct ProcStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// What a runtime reports about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeState {
    /// `created`, `running`, `paused`, `stopped`.
    pub status: String,
    pub pid: i32,
}

/// Options of creating a container or an exec process.
pub struct Spawn<'a> {
    pub id: &'a str,
    pub stdio: ProcStdio,
    /// Where the runtime sends the pty master (terminal processes).
    pub console_socket: Option<&'a Path>,
    pub pid_file: PathBuf,
}

/// One OCI runtime.
pub trait Runtime: Send + Sync {
    /// Name for messages (`runc`, `crun`, …).
    fn name(&self) -> &str;
    /// Creates container `spawn.id` from `bundle`; returns the init pid.
    fn create(&self, bundle: &Path, spawn: Spawn<'_>) -> Result<i32, RuntimeError>;
    /// Starts the created container's init process.
    fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Runs the process described by the OCI process JSON `process` inside the
    /// container, detached; returns its pid. A runtime binary reads the JSON from
    /// `process_file` (written and removed around the call) and writes the pid to
    /// `spawn.pid_file`; the built-in runtime needs neither file.
    fn exec(
        &self,
        process: &[u8],
        process_file: &Path,
        spawn: Spawn<'_>,
    ) -> Result<i32, RuntimeError>;
    /// Whether `exec` leaves files in the bundle (a runtime binary's pid file) that
    /// go when the exec is deleted.
    fn exec_leaves_files(&self) -> bool {
        true
    }
    /// Sends `signal` to the init process (`all`: to every process of the container).
    fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError>;
    /// Deletes the container (`force`: even when running).
    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError>;
    /// The container's state.
    fn state(&self, id: &str) -> Result<RuntimeState, RuntimeError>;
    /// Freezes the container.
    fn pause(&self, id: &str) -> Result<(), RuntimeError>;
    /// Thaws the container.
    fn resume(&self, id: &str) -> Result<(), RuntimeError>;
    /// Host pids of the container's processes.
    fn pids(&self, id: &str) -> Result<Vec<i32>, RuntimeError>;
    /// Applies the OCI `LinuxResources` JSON to the running container.
    fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), RuntimeError>;
    /// Resource usage of the container's cgroup.
    fn stats(&self, id: &str) -> Result<berth_runtime::Stats, RuntimeError>;
}
