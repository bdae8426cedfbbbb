//! berth: the docker-style CLI, a client of the Docker Engine API.
//!
//! Landed so far: the API client over the unix socket, docker's `--format` templates,
//! and the `version` and `info` commands. Container and image commands come with
//! their issue.

pub mod client;
pub mod commands;
pub mod health_args;
pub mod run_args;
pub mod tabwriter;
pub mod template;
pub mod terminal;
pub mod units;
