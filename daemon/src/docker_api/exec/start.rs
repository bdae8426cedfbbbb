//! `POST /exec/{id}/start`: runs a made exec. Detached: `200` at once, the output
//! dropped. Attached: the client's connection is hijacked (see `hijack`) before the
//! process starts, so a start that fails (say, the command is not found) is told in
//! the stream as dockerd tells it, and the exec's exit code says which (126/127).

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{self as engine, ProcessIo};
use hyper::StatusCode;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::hijack::{self, Conn};
use super::create::console_size;
use super::{exec_error, ApiError, ApiRequest};
use crate::docker_api::Reply;
use crate::Daemon;

/// Docker's `ExecStartConfig` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartRequest {
    detach: bool,
    /// Must match the exec's: the terminal is chosen when the exec is made.
    tty: Option<bool>,
    /// `[height, width]`, replacing the one given at create.
    console_size: Option<Vec<u32>>,
}

pub async fn handle(
    daemon: &Arc<Daemon>,
    id: &str,
    req: &mut ApiRequest,
) -> Result<Reply, ApiError> {
    let body: Option<StartRequest> = req.json().await?;
    let body = body.unwrap_or_default();
    let info = engine::exec_inspect(&daemon.engine, id).map_err(|e| exec_error(id, e))?;
    let id = info.id.clone();
    let tty = info.config.tty;
    if let Some(asked) = body.tty.filter(|t| *t != tty) {
        return Err(ApiError::BadRequest(format!(
            "Tty: the start asks for {asked} but exec {id} was made with Tty {tty}"
        )));
    }
    let extras = daemon.execs.get(&id);
    let size = console_size(body.console_size.as_deref())?.or(extras.console_size);
    let keys = hijack::parse_detach_keys(&extras.detach_keys)?;
    if info.exit_code.is_some() && !info.running {
        return Err(ApiError::Conflict(format!(
            "Error: Exec command {id} has already run"
        )));
    }
    if info.running || info.pid.is_some() {
        return Err(ApiError::Conflict(format!(
            "Error: Exec command {id} is already running"
        )));
    }
    if body.detach {
        let io = engine::exec_start(&daemon.engine, &id)
            .await
            .map_err(|e| exec_error(&id, e))?;
        resize(daemon, &id, tty, size).await;
        tokio::spawn(drain(io));
        return Ok(Reply::empty(StatusCode::OK));
    }
    let daemon = Arc::clone(daemon);
    Ok(hijack::respond(
        req,
        tty,
        Box::new(move |client| {
            Box::pin(async move {
                match engine::exec_start(&daemon.engine, &id).await {
                    Ok(io) => {
                        resize(&daemon, &id, tty, size).await;
                        // The exit code is recorded before the stream closes: the
                        // docker CLI inspects the exec as soon as it ends.
                        let exited = async {
                            let wait = engine::exec_wait(&daemon.engine, &id);
                            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
                        };
                        let end = hijack::pump_then(client, io, keys, exited).await;
                        tracing::debug!(exec = %id, ?end, "exec session ended");
                    }
                    Err(e) => {
                        tracing::debug!(exec = %id, error = %e, "exec start failed");
                        tell(client.conn, tty, &e.to_string()).await;
                    }
                }
            })
        }),
    ))
}

/// Gives a TTY exec its first size.
async fn resize(daemon: &Arc<Daemon>, id: &str, tty: bool, size: Option<(u16, u16)>) {
    if let (true, Some((h, w))) = (tty, size) {
        if let Err(e) = engine::exec_resize(&daemon.engine, id, w, h).await {
            tracing::debug!(exec = %id, error = %e, "the first resize failed");
        }
    }
}

/// A detached exec's output goes nowhere; its stdin is closed.
async fn drain(io: ProcessIo) {
    drop(io.stdin);
    tokio::join!(drain_one(io.stdout), drain_one(io.stderr));
}

async fn drain_one(reader: Option<engine::OutputReader>) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; 16 * 1024];
    while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Writes a failed start's message into the stream (as stdout), as dockerd does.
async fn tell(mut conn: Box<dyn Conn>, tty: bool, message: &str) {
    let text = format!("{message}\r\n");
    if !tty {
        let _ = conn.write_all(&hijack::frame_header(1, text.len())).await;
    }
    let _ = conn.write_all(text.as_bytes()).await;
    let _ = conn.shutdown().await;
}
