//! The crate's error type: every variant says which container, path or step failed.

use std::path::PathBuf;

/// Errors of the runtime library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the bundle config {path}: {msg}")]
    Spec { path: PathBuf, msg: String },
    #[error("invalid config: {0}")]
    InvalidSpec(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-', '.', not starting with '.'"
    )]
    InvalidId(String),
    #[error("container {id:?} is {status}, {wanted}")]
    BadStatus {
        id: String,
        status: String,
        wanted: &'static str,
    },
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{step}: {source}")]
    Sys {
        step: String,
        source: nix::errno::Errno,
    },
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("container init failed: {0}")]
    Init(String),
    #[error("hook {path} ({kind}): {msg}")]
    Hook {
        kind: &'static str,
        path: PathBuf,
        msg: String,
    },
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("state of container {id:?}: {msg}")]
    State { id: String, msg: String },
}

/// Result alias for the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            step,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(step: impl Into<String>, source: nix::errno::Errno) -> Self {
        Error::Sys {
            step: step.into(),
            source,
        }
    }
}
