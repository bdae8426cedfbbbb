//! Container logs for Docker clients: the log drivers ([`drivers`]) and the files the
//! shim writes, filtered and framed ([`docker_logs`]).

pub mod docker_logs;
pub mod drivers;
