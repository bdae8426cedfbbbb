//! `POST /containers/{id}/exec`: makes an exec (started by `POST /exec/{id}/start`).
//! Every field of Docker's body is applied or refused by name.

use std::sync::Arc;

use berth_engine::{self as engine, ExecConfig, Status};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::super::hijack::parse_detach_keys;
use super::{ApiError, ApiRequest, ExecExtras};
use crate::docker_api::Reply;
use crate::Daemon;

/// Docker's `ExecConfig` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecRequest {
    pub user: String,
    pub privileged: bool,
    pub tty: bool,
    /// `[height, width]`.
    pub console_size: Option<Vec<u32>>,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// Docker keeps it for the start, whose own `Detach` decides; so does berth.
    pub detach: bool,
    pub detach_keys: String,
    pub env: Option<Vec<String>>,
    pub working_dir: String,
    pub cmd: Option<Vec<String>>,
}

impl ExecRequest {
    /// The engine's exec config and the extras kept beside it; refusals as dockerd's.
    pub fn to_config(&self) -> Result<(ExecConfig, ExecExtras), ApiError> {
        let args = self.cmd.clone().unwrap_or_default();
        if args.is_empty() {
            return Err(ApiError::BadRequest("No exec command specified".into()));
        }
        if !self.working_dir.is_empty() && !self.working_dir.starts_with('/') {
            return Err(ApiError::BadRequest(format!(
                "WorkingDir: the working directory '{}' is invalid, it needs to be an absolute path",
                self.working_dir
            )));
        }
        let env = self.env.clone().unwrap_or_default();
        if let Some(bad) = env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
            return Err(ApiError::BadRequest(format!(
                "Env: invalid environment variable: {bad:?}"
            )));
        }
        parse_detach_keys(&self.detach_keys)?;
        let console_size = console_size(self.console_size.as_deref())?;
        Ok((
            ExecConfig {
                args,
                env,
                cwd: Some(self.working_dir.clone()).filter(|d| !d.is_empty()),
                user: Some(self.user.clone()).filter(|u| !u.is_empty()),
                tty: self.tty,
                stdin: self.attach_stdin,
                stdout: self.attach_stdout,
                stderr: self.attach_stderr,
                privileged: self.privileged,
            },
            ExecExtras {
                detach_keys: self.detach_keys.clone(),
                console_size,
            },
        ))
    }
}

/// `ConsoleSize`: `[height, width]`, each a terminal size; `[0, 0]` or absent: none.
pub fn console_size(size: Option<&[u32]>) -> Result<Option<(u16, u16)>, ApiError> {
    match size {
        None | Some([0, 0]) => Ok(None),
        Some([h, w]) => match (u16::try_from(*h), u16::try_from(*w)) {
            (Ok(h), Ok(w)) => Ok(Some((h, w))),
            _ => Err(ApiError::BadRequest(format!(
                "ConsoleSize: [{h}, {w}] is not a terminal size (0 to 65535 each)"
            ))),
        },
        Some(other) => Err(ApiError::BadRequest(format!(
            "ConsoleSize: takes [height, width], got {} values",
            other.len()
        ))),
    }
}

pub async fn create(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &mut ApiRequest,
) -> Result<Reply, ApiError> {
    let body: Option<ExecRequest> = req.json().await?;
    let (config, extras) = body.unwrap_or_default().to_config()?;
    let record = engine::find(&daemon.engine, reference)?;
    let id = &record.id;
    match record.state.status {
        Status::Running => {}
        Status::Paused => {
            return Err(ApiError::Conflict(format!(
                "Container {id} is paused, unpause the container before exec"
            )))
        }
        Status::Restarting => {
            return Err(ApiError::Conflict(format!(
                "Container {id} is restarting, wait until the container is running"
            )))
        }
        _ => return Err(ApiError::Conflict(format!("Container {id} is not running"))),
    }
    let exec_id = engine::exec_create(&daemon.engine, id, config).await?;
    daemon
        .execs
        .retain(|known| engine::exec_inspect(&daemon.engine, known).is_ok());
    daemon.execs.insert(&exec_id, extras);
    Ok(Reply::json(&json!({ "Id": exec_id })).with_status(StatusCode::CREATED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: serde_json::Value) -> Result<(ExecConfig, ExecExtras), String> {
        serde_json::from_value::<ExecRequest>(body)
            .map_err(|e| e.to_string())?
            .to_config()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_field_reaches_the_config() {
        let (c, x) = parse(json!({
            "User": "1000:1000", "Privileged": true, "Tty": true, "ConsoleSize": [24, 80],
            "AttachStdin": true, "AttachStdout": true, "AttachStderr": false,
            "Detach": false, "DetachKeys": "ctrl-x", "Env": ["A=b"], "WorkingDir": "/tmp",
            "Cmd": ["sh", "-c", "true"]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.args, ["sh", "-c", "true"]);
        assert_eq!(c.env, ["A=b"]);
        assert_eq!(c.cwd.as_deref(), Some("/tmp"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert!(c.tty && c.stdin && c.stdout && !c.stderr && c.privileged);
        assert_eq!(x.detach_keys, "ctrl-x");
        assert_eq!(x.console_size, Some((24, 80)));
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        let cases = [
            (json!({"Cmd": []}), "No exec command specified"),
            (json!({}), "No exec command specified"),
            (json!({"Cmd": ["x"], "WorkingDir": "tmp"}), "WorkingDir"),
            (json!({"Cmd": ["x"], "Env": ["=x"]}), "Env"),
            (
                json!({"Cmd": ["x"], "DetachKeys": "ctrl-1"}),
                "Invalid detach keys",
            ),
            (json!({"Cmd": ["x"], "ConsoleSize": [1]}), "ConsoleSize"),
            (
                json!({"Cmd": ["x"], "ConsoleSize": [70000, 1]}),
                "ConsoleSize",
            ),
        ];
        for (body, want) in cases {
            let got = parse(body.clone()).err().unwrap_or_default();
            assert!(got.contains(want), "{body}: {got}");
        }
    }
}
