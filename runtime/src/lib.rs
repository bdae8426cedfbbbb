//! berth-runtime: an OCI runtime with runc's command line, usable in-process.
//!
//! [`Runtime`] is rooted at a state directory (runc's `--root`) and offers runc's
//! operations: [`Runtime::create`], [`Runtime::start`], [`Runtime::run`],
//! [`Runtime::state`], [`Runtime::kill`], [`Runtime::delete`], [`Runtime::exec`],
//! [`Runtime::pause`], [`Runtime::resume`], [`Runtime::ps`], [`Runtime::stats`],
//! [`Runtime::list`]. `create` forks the container init directly from the calling
//! process (no re-exec of a binary); the init sets up namespaces, mounts, /dev,
//! pivot_root, limits and credentials, then waits on `exec.fifo` until `start`.

pub mod cgroups;
pub mod container;
mod error;
pub mod hooks;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
mod sync;

/// Receives the pty master a container sends on its console socket.
pub use sync::recv_fd;

pub use cgroups::{CgroupSample, Stats};
pub use container::{CreateOptions, Created, Exec, ExecOptions, Runtime, DEFAULT_ROOT};
pub use error::{Error, Result};
pub use state::{OciState, Status};
