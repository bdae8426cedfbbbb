//! `GET /containers/{id}/logs`: the container's log (CRI or json-file format, its
//! rotated files first, gzipped or not), filtered and framed as Docker sends it; with
//! `follow`, new lines as they are written, across rotations, until the container
//! stops or, with `until`, until that time passes (Docker's rule: the stream ends
//! then even while the container still writes).

use std::sync::Arc;
use std::time::Duration;

use berth_engine::logs::files::read_all;
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

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &ApiRequest,
) -> Result<Reply, ApiError> {
    let record = engine::find(&daemon.engine, reference)?;
    // The `none` log driver keeps nothing to read (Docker's answer, 501); records
    // made before the log settings existed say so in their request.
    let format = match record.log.format() {
        Some(f) if record.request["HostConfig"]["LogConfig"]["Type"].as_str() != Some("none") => f,
        _ => {
            return Err(ApiError::NotImplemented(
                "configured logging driver does not support reading".into(),
            ))
        }
    };
    let q = query(req)?;
    let follow = req.query_bool("follow")?;
    let path = daemon.engine.log_of(&record);
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || read_all(&path, format))
            .await
            .map_err(|e| ApiError::Internal(format!("reading the log: {e}")))?
    };
    let (mut entries, follower) = read.map_err(|e| ApiError::Internal(e.to_string()))?;
    let (tx, reply) = Reply::channel(CONTENT_TYPE);
    if !follow {
        entries.extend(follower.finish());
        let mut out = Vec::new();
        for e in select(&entries, &q) {
            frame(e, q.timestamps, record.tty, &mut out);
        }
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from(out)).await;
        });
        return Ok(reply);
    }
    let mut out = Vec::new();
    for e in select(&entries, &q) {
        frame(e, q.timestamps, record.tty, &mut out);
    }
    drop(entries);
    let daemon = Arc::clone(daemon);
    let id = record.id.clone();
    let tty = record.tty;
    tokio::spawn(async move {
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
        let q = LogsQuery { tail: None, ..q };
        let mut follower = Some(follower);
        loop {
            // Past `until`, this read is the last: what was written before it is in
            // the file by now, and what comes later is after it.
            let past_until = q.until_nanos.is_some_and(|u| now_nanos() >= u);
            let running = match engine::get(&daemon.engine, &id) {
                Ok(r) => r.state.status.has_task() || r.state.status == Status::Restarting,
                Err(_) => false,
            };
            let Some(mut f) = follower.take() else {
                return;
            };
            let read = tokio::task::spawn_blocking(move || {
                let mut entries = f.read_entries();
                if past_until && running {
                    return (None, entries);
                }
                if !running {
                    // Read once more after the container stopped: its last lines,
                    // a last unfinished one included, are in.
                    if let Ok(e) = entries.as_mut() {
                        e.extend(f.finish());
                    }
                    return (None, entries);
                }
                (Some(f), entries)
            })
            .await;
            let Ok((next, Ok(entries))) = read else {
                return;
            };
            follower = next;
            let mut chunk = Vec::new();
            for e in select(&entries, &q) {
                frame(e, q.timestamps, tty, &mut chunk);
            }
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if follower.is_none() {
                return;
            }
            let mut wait = Duration::from_millis(100);
            if let Some(u) = q.until_nanos {
                let left = u.saturating_sub(now_nanos()).max(0);
                wait = wait.min(Duration::from_nanos(
                    u64::try_from(left).unwrap_or(u64::MAX),
                ));
            }
            let _ = engine::wait_exit(&daemon.engine, &id, Some(wait)).await;
        }
    });
    Ok(reply)
}

/// Now, in nanoseconds since the epoch (as log entries and `until` count time).
fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
