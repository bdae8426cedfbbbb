//! `GET /containers/{id}/logs`: the container's CRI log, filtered and framed as Docker
//! sends it; with `follow`, new lines as they are written until the container stops.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::logs::cri_log::{read_entries, Entry};
use berth_engine::{self as engine, Status};
use bytes::Bytes;

use super::{ApiError, ApiRequest, Reply};
use crate::logs::docker_logs::{frame, parse_unix_time, select, LogsQuery};
use crate::Daemon;

const CONTENT_TYPE: &str = "application/vnd.docker.raw-stream";

fn query(req: &ApiRequest) -> Result<LogsQuery, ApiError> {
    let time = |name: &str| -> Result<Option<i128>, ApiError> {
        match req.query(name).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => parse_unix_time(v)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("invalid value for {name:?}: {v:?}"))),
        }
    };
    let tail = match req.query("tail") {
        None | Some("") | Some("all") => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid value for \"tail\": {v:?}")))?,
        )
        .filter(|n| *n >= 0)
        .map(|n| n as usize),
    };
    let q = LogsQuery {
        stdout: req.query_bool("stdout")?,
        stderr: req.query_bool("stderr")?,
        since_nanos: time("since")?,
        until_nanos: time("until")?,
        tail,
        timestamps: req.query_bool("timestamps")?,
    };
    if !q.stdout && !q.stderr {
        return Err(ApiError::BadRequest(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    Ok(q)
}

/// Reads complete lines from `offset`; returns the entries and the new offset.
fn read_from(path: &Path, offset: u64) -> Result<(Vec<Entry>, u64), ApiError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => {
            return Err(ApiError::Internal(format!(
                "reading {}: {e}",
                path.display()
            )))
        }
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // A rotated (truncated) log starts over.
    let offset = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?;
    let complete = buf
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let entries = read_entries(&buf[..complete]).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((entries, offset + complete as u64))
}

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &ApiRequest,
) -> Result<Reply, ApiError> {
    let record = engine::find(&daemon.engine, reference)?;
    // The `none` log driver keeps nothing to read (Docker's answer, 501).
    if record.request["HostConfig"]["LogConfig"]["Type"].as_str() == Some("none") {
        return Err(ApiError::NotImplemented(
            "configured logging driver does not support reading".into(),
        ));
    }
    let q = query(req)?;
    let follow = req.query_bool("follow")?;
    let path = daemon.engine.log_of(&record);
    let (entries, offset) = read_from(&path, 0)?;
    let mut out = Vec::new();
    for e in select(&entries, &q) {
        frame(e, q.timestamps, record.tty, &mut out);
    }
    if !follow {
        let (tx, reply) = Reply::channel(CONTENT_TYPE);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from(out)).await;
        });
        return Ok(reply);
    }
    let (tx, reply) = Reply::channel(CONTENT_TYPE);
    let daemon = Arc::clone(daemon);
    let id = record.id.clone();
    let tty = record.tty;
    tokio::spawn(async move {
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
        let mut offset = offset;
        let q = LogsQuery { tail: None, ..q };
        loop {
            let running = match engine::get(&daemon.engine, &id) {
                Ok(r) => r.state.status.has_task() || r.state.status == Status::Restarting,
                Err(_) => false,
            };
            let Ok((entries, next)) = read_from(&path, offset) else {
                return;
            };
            offset = next;
            let mut chunk = Vec::new();
            for e in select(&entries, &q) {
                frame(e, q.timestamps, tty, &mut chunk);
            }
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            // Read once more after the container stopped: its last lines are in.
            if !running {
                return;
            }
            let _ = engine::wait_exit(&daemon.engine, &id, Some(Duration::from_millis(100))).await;
        }
    });
    Ok(reply)
}
