//! `GET /containers/{id}/top`: the container's processes with `ps -ef`'s columns,
//! read from /proc.

use std::sync::Arc;

use serde_json::json;

use super::{ApiError, Reply};
use crate::engine;
use crate::Daemon;

fn uid_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

fn ppid_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.to_string();
            after.split_whitespace().nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

fn cmd_of(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let s: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    s.join(" ")
}

pub async fn handle(daemon: &Arc<Daemon>, reference: &str) -> Result<Reply, ApiError> {
    let pids = engine::top(daemon, reference).await?;
    let rows: Vec<Vec<String>> = pids
        .iter()
        .map(|&p| {
            vec![
                uid_of(p),
                p.to_string(),
                ppid_of(p),
                "0".into(),
                "-".into(),
                "?".into(),
                "-".into(),
                cmd_of(p),
            ]
        })
        .collect();
    Ok(Reply::json(&json!({
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Processes": rows,
    })))
}
