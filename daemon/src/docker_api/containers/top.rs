//! `GET /containers/{id}/top?ps_args=…`: the container's processes as the host's `ps`
//! shows them, as Docker does it: `ps` runs on the host with the given arguments
//! (`-ef` by default; user names come from the host's passwd) and the lines of the
//! container's processes are kept.

use std::sync::Arc;

use berth_engine as engine;
use serde_json::json;

use super::{ApiError, Reply};
use crate::Daemon;

/// The answer: `ps`'s titles and one row per kept line.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    ps_args: Option<&str>,
) -> Result<Reply, ApiError> {
    let ps_args = ps_args
        .filter(|a| !a.is_empty())
        .unwrap_or("-ef")
        .to_string();
    check_args(&ps_args)?;
    let pids = engine::top(&daemon.engine, reference).await?;
    let output = run_ps(&ps_args, &pids).await?;
    let table = parse(&output, &pids)?;
    Ok(Reply::json(&json!({
        "Titles": table.titles,
        "Processes": table.processes,
    })))
}

/// Refuses arguments that rename a column to `PID` (`-o user=PID`): the PID column
/// is how the container's lines are found. `pid=PID` is fine.
pub fn check_args(ps_args: &str) -> Result<(), ApiError> {
    let tokens = tokens_after_space(ps_args);
    let mut i = 0;
    while i < tokens.len() {
        let (token, after_space) = tokens[i];
        i += 1;
        if !after_space {
            continue;
        }
        // The key is the longest prefix followed by `=`, optional spaces and `PID…`.
        for (pos, _) in token
            .match_indices('=')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let rest = &token[pos + 1..];
            let value = if rest.starts_with("PID") {
                Some(rest)
            } else if rest.is_empty() {
                tokens
                    .get(i)
                    .map(|(next, _)| *next)
                    .filter(|n| n.starts_with("PID"))
            } else {
                None
            };
            if let Some(value) = value {
                let key = &token[..pos];
                if key != "pid" {
                    return Err(ApiError::BadRequest(format!(
                        "specifying \"{key}={value}\" is not allowed"
                    )));
                }
                if rest.is_empty() {
                    i += 1;
                }
                break;
            }
        }
    }
    Ok(())
}

/// The whitespace-separated tokens of `s`, each with whether whitespace comes before it.
fn tokens_after_space(s: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut space_before = false;
    for (i, c) in s.char_indices() {
        if is_ascii_space(c) {
            if let Some(st) = start.take() {
                out.push((&s[st..i], space_before));
            }
            space_before = true;
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        out.push((&s[st..], space_before));
    }
    out
}

fn is_ascii_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// Runs `ps ARGS -qPIDS`; when ps refuses that (some options cannot go with `q`), `ps
/// ARGS` alone.
async fn run_ps(ps_args: &str, pids: &[u32]) -> Result<Vec<u8>, ApiError> {
    // Split on single spaces, as Docker does: `aux` stays one argument.
    let args: Vec<&str> = ps_args.split(' ').collect();
    let only = format!(
        "-q{}",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let run = |with_pids: bool| {
        let mut cmd = tokio::process::Command::new("ps");
        cmd.args(&args);
        if with_pids {
            cmd.arg(&only);
        }
        cmd.stdin(std::process::Stdio::null());
        async move { cmd.output().await }
    };
    let spawn_error = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::Internal(
                "ps: exec: \"ps\": executable file not found in $PATH (docker top runs the host's ps: install procps)"
                    .into(),
            )
        } else {
            ApiError::Internal(format!("ps: {e}"))
        }
    };
    let first = run(true).await.map_err(spawn_error)?;
    if first.status.success() {
        return Ok(first.stdout);
    }
    let second = run(false).await.map_err(spawn_error)?;
    if second.status.success() {
        return Ok(second.stdout);
    }
    let stderr = String::from_utf8_lossy(&second.stderr);
    let why = match stderr.lines().next().filter(|l| !l.is_empty()) {
        Some(line) => line.to_string(),
        None => second.status.to_string(),
    };
    Err(ApiError::Internal(format!("ps: {why}")))
}

/// Keeps the lines of `output` whose PID is one of `pids` (and the thread lines, PID
/// `-`, that follow such a line), each cut into as many fields as there are titles,
/// the last one taking the rest of the line.
pub fn parse(output: &[u8], pids: &[u32]) -> Result<Table, ApiError> {
    let text = String::from_utf8_lossy(output);
    let mut lines = text.split('\n');
    let fields = |l: &str| -> Vec<String> {
        l.split(is_ascii_space)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect()
    };
    let titles = fields(lines.next().unwrap_or(""));
    let pid_index = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::Internal("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    let mut in_container = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let mut row = fields(line);
        let Some(pid) = row.get(pid_index) else {
            continue;
        };
        if pid == "-" {
            if in_container {
                processes.push(fit(&mut row, titles.len()));
            }
            continue;
        }
        let pid: u32 = pid
            .parse()
            .map_err(|e| ApiError::Internal(format!("Unexpected pid '{pid}': {e}")))?;
        in_container = pids.contains(&pid);
        if in_container {
            processes.push(fit(&mut row, titles.len()));
        }
    }
    Ok(Table { titles, processes })
}

/// `row` with the fields past the last title joined into the last one.
fn fit(row: &mut Vec<String>, titles: usize) -> Vec<String> {
    if titles > 0 && row.len() > titles {
        let rest = row.split_off(titles - 1).join(" ");
        row.push(rest);
    }
    std::mem::take(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_containers_lines_are_kept_and_the_command_stays_whole() {
        let out = b"UID          PID    PPID  C STIME TTY          TIME CMD\n\
root           1       0  0 10:00 ?        00:00:01 /sbin/init\n\
root        4242    4200  0 10:01 ?        00:00:00 sh -c sleep 1000\n\
www-data    4243    4242  0 10:01 ?        00:00:00 sleep 1000\n";
        let table = parse(out, &[4242, 4243]).ok();
        assert_eq!(
            table,
            Some(Table {
                titles: strings(&["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]),
                processes: vec![
                    strings(&[
                        "root",
                        "4242",
                        "4200",
                        "0",
                        "10:01",
                        "?",
                        "00:00:00",
                        "sh -c sleep 1000"
                    ]),
                    strings(&[
                        "www-data",
                        "4243",
                        "4242",
                        "0",
                        "10:01",
                        "?",
                        "00:00:00",
                        "sleep 1000"
                    ]),
                ],
            })
        );
    }

    #[test]
    fn thread_lines_follow_their_process() {
        let out = b"USER PID TID CMD\nroot 7 - a\nroot - 7 t1\nroot 8 - b\nroot - 8 t2\n";
        let table = parse(out, &[8]).ok().map(|t| t.processes);
        assert_eq!(
            table,
            Some(vec![
                strings(&["root", "8", "-", "b"]),
                strings(&["root", "-", "8", "t2"])
            ])
        );
    }

    #[test]
    fn output_without_a_pid_column_is_an_error() {
        let err = parse(b"USER COMMAND\nroot sh\n", &[1])
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("Couldn't find PID field in ps output"));
        let err = parse(b"PID CMD\nx sh\n", &[1]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("Unexpected pid 'x'")));
    }

    #[test]
    fn renaming_a_column_to_pid_is_refused() {
        let msg = |a: &str| check_args(a).err().map(|e| e.to_string());
        assert_eq!(msg("-ef"), None);
        assert_eq!(msg("aux"), None);
        assert_eq!(msg("-o pid=PID"), None);
        assert_eq!(msg("-o pid= PID,comm"), None);
        assert_eq!(
            msg("-o user=PID").as_deref(),
            Some("specifying \"user=PID\" is not allowed")
        );
        assert_eq!(
            msg("-o pid,user= PIDX").as_deref(),
            Some("specifying \"pid,user=PIDX\" is not allowed")
        );
        // Only a key after whitespace counts, as in Docker's check.
        assert_eq!(msg("user=PID"), None);
    }
}
