//! `GET /exec/{id}/json`.

use std::sync::Arc;

use berth_engine as engine;
use serde_json::json;

use super::{exec_error, ApiError};
use crate::docker_api::Reply;
use crate::Daemon;

pub fn handle(daemon: &Arc<Daemon>, id: &str) -> Result<Reply, ApiError> {
    let info = engine::exec_inspect(&daemon.engine, id).map_err(|e| exec_error(id, e))?;
    let extras = daemon.execs.get(&info.id);
    let c = &info.config;
    let (entrypoint, arguments) = match c.args.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    Ok(Reply::json(&json!({
        "ID": info.id,
        "Running": info.running,
        // null until the exec has exited, as dockerd.
        "ExitCode": if info.running { None } else { info.exit_code },
        "ProcessConfig": {
            "tty": c.tty,
            "entrypoint": entrypoint,
            "arguments": arguments,
            "privileged": c.privileged,
            "user": c.user.clone().unwrap_or_default(),
        },
        "OpenStdin": c.stdin,
        "OpenStderr": c.stderr,
        "OpenStdout": c.stdout,
        "CanRemove": false,
        "ContainerID": info.container_id,
        "DetachKeys": extras.detach_keys,
        "Pid": info.pid.unwrap_or(0),
    })))
}
