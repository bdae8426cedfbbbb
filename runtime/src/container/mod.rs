//! Container lifecycle operations (runc's commands), as a library.

mod create;
mod exec;
mod init;
mod ops;
pub mod plan;

use std::path::{Path, PathBuf};

pub use create::{CreateOptions, Created};
pub use exec::{Exec, ExecOptions};

/// The runtime, rooted at a state directory (runc's `--root`).
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    /// What execs into a running container share, per container (see `exec.rs`).
    execs: exec::ExecBases,
}

/// runc's default root is /run/runc; ours:
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: root.into(),
            execs: exec::ExecBases::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}
