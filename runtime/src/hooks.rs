//! OCI hooks: each runs with the container state JSON on stdin, its own env and
//! an optional timeout (seconds); a failure or timeout fails the operation.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

fn fail(kind: &'static str, h: &Hook, msg: impl Into<String>) -> Error {
    Error::Hook {
        kind,
        path: h.path().clone(),
        msg: msg.into(),
    }
}

/// Runs `hooks` in order; stops at the first failure.
pub fn run(kind: &'static str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for h in hooks {
        run_one(kind, h, state)?;
    }
    Ok(())
}

fn run_one(kind: &'static str, h: &Hook, state: &[u8]) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(kind, h, format!("starting: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut nap = Duration::from_micros(100);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(kind, h, format!("exited with {status}"))),
            Ok(None) => {}
            Err(e) => return Err(fail(kind, h, format!("waiting: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(
                kind,
                h,
                format!("timed out after {}s", h.timeout().unwrap_or(0)),
            ));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}
