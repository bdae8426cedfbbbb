//! berth-runtime: an OCI runtime with runc's command line, usable in-process.
//!
//! Being built under issue 3 (see ARCHITECTURE.md).
