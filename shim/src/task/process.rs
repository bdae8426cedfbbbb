//! One process the shim supervises: a container's init or an exec.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::stdio::{Copier, RunningIo};

/// Lifecycle of a process as the Task API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcStatus {
    Created,
    Running,
    Paused,
    Stopped,
}

/// The stdio paths a client asked for.
#[derive(Debug, Clone, Default)]
pub struct IoPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// A process and how it ended.
pub struct Proc {
    pub pid: i32,
    pub status: ProcStatus,
    pub exit: Option<(u32, SystemTime)>,
    pub io_paths: IoPaths,
    pub io: RunningIo,
    /// An exec's OCI process JSON, kept until Start.
    pub spec: Option<Vec<u8>>,
}

impl Proc {
    /// A process not started yet.
    pub fn new(io_paths: IoPaths) -> Proc {
        Proc {
            pid: 0,
            status: ProcStatus::Created,
            exit: None,
            io_paths,
            io: RunningIo::default(),
            spec: None,
        }
    }
}

/// Waits (bounded) for output copy threads to drain what the process wrote, so a
/// client that sees the exit also sees all output. Woken by each copier's end, not
/// by polling.
pub fn drain(copiers: Vec<Copier>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    for c in copiers {
        c.join_by(deadline);
    }
}

/// Where a container's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub bundle: PathBuf,
}

impl Paths {
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }
    pub fn pid_file(&self, exec_id: &str) -> PathBuf {
        if exec_id.is_empty() {
            self.bundle.join("init.pid")
        } else {
            self.bundle.join(format!("exec-{exec_id}.pid"))
        }
    }
    pub fn exec_spec(&self, exec_id: &str) -> PathBuf {
        self.bundle.join(format!("exec-{exec_id}.json"))
    }
}
