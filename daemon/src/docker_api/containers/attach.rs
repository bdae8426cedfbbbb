//! `POST /containers/{id}/attach`: the container's main process on the client's
//! connection (see `hijack`). Query: `stream` (live output and input), `logs` (what
//! the container wrote before), `stdin`, `stdout`, `stderr`, `detachKeys`. Works before
//! the container starts (the docker CLI's foreground `run` attaches first); stdin only
//! reaches a container created with `OpenStdin`, as with dockerd.

use std::sync::Arc;

use berth_engine::{self as engine, AttachOptions, ContainerRecord, Status};

use super::super::hijack;
use super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &mut ApiRequest,
) -> Result<Reply, ApiError> {
    let stream = req.query_bool("stream")?;
    let logs = req.query_bool("logs")?;
    let opts = AttachOptions {
        stdin: req.query_bool("stdin")? && stream,
        stdout: req.query_bool("stdout")?,
        stderr: req.query_bool("stderr")?,
        logs,
    };
    let keys = hijack::parse_detach_keys(req.query("detachKeys").unwrap_or(""))?;
    if !stream && logs {
        return Err(ApiError::BadRequest(
            "attach with logs=1 and stream=0 is not supported: read GET /containers/{id}/logs instead".into(),
        ));
    }
    let record = attachable(daemon, reference)?;
    if !stream {
        // Neither the past nor the live output asked for: an empty stream, as dockerd.
        return Ok(hijack::respond(
            req,
            record.tty,
            Box::new(|client| Box::pin(async move { drop(client) })),
        ));
    }
    let io = engine::attach(&daemon.engine, &record.id, opts).await?;
    let tty = io.tty;
    let id = record.id.clone();
    Ok(hijack::respond(
        req,
        tty,
        Box::new(move |client| {
            Box::pin(async move {
                let end = hijack::pump(client, io, keys).await;
                tracing::debug!(container = %id, ?end, "attach ended");
            })
        }),
    ))
}

/// The container `reference` names, refused as dockerd refuses an attach (both the
/// hijacked and the WebSocket one): unknown (404), paused or restarting (409).
pub(super) fn attachable(daemon: &Daemon, reference: &str) -> Result<ContainerRecord, ApiError> {
    let record = engine::find(&daemon.engine, reference)?;
    match record.state.status {
        Status::Paused => Err(ApiError::Conflict(format!(
            "container {reference} is paused, unpause the container before attach"
        ))),
        Status::Restarting => Err(ApiError::Conflict(format!(
            "container {reference} is restarting, wait until the container is running"
        ))),
        _ => Ok(record),
    }
}
