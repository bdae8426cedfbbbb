//! Container logs: reading the shim's CRI-format files and serving them to Docker
//! clients.

pub mod cri_log;
pub mod docker_logs;
pub mod timestamp;
