//! Container logs: the engine's CRI-format files served to Docker clients.

pub mod docker_logs;
