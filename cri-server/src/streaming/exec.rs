//! `Exec`: a validated request becomes a URL on the streaming server; the connection
//! runs the command through the engine's exec API, its exit code on the error stream.

use std::io;

use berth_engine::{self as engine, ExecConfig};
use k8s_cri::v1 as cri;

use super::remotecommand::{self, Options, Outcome, Terminal};
use super::server::Conn;
use super::StreamRequest;
use crate::containers::cri_record;
use crate::{Cri, CriError};

/// SIGKILL, for an exec whose client went away.
const SIGKILL: i32 = 9;

pub(crate) async fn exec(cri: &Cri, req: cri::ExecRequest) -> Result<cri::ExecResponse, CriError> {
    let engine = cri.engine("Exec")?;
    if req.cmd.is_empty() {
        return Err(CriError::InvalidArgument("Exec without a command".into()));
    }
    validate_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
    let record = cri_record(&engine, &req.container_id)?;
    if !record.state.status.has_task() {
        return Err(CriError::FailedPrecondition(format!(
            "container {} is not running",
            req.container_id
        )));
    }
    let url = cri.streaming().url(StreamRequest::Exec(req))?;
    Ok(cri::ExecResponse { url })
}

/// As kubelet and containerd check a streaming request's options.
pub(crate) fn validate_streams(
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<(), CriError> {
    if tty && stderr {
        return Err(CriError::InvalidArgument(
            "tty and stderr cannot both be true".into(),
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(CriError::InvalidArgument(
            "one of stdin, stdout, or stderr must be set".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn serve(cri: &Cri, req: cri::ExecRequest, conn: Conn) -> io::Result<()> {
    let opts = Options {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        tty: req.tty,
    };
    let Some(mut streams) = remotecommand::open(conn, opts).await? else {
        return Ok(());
    };
    let engine = match cri.engine("Exec") {
        Ok(e) => e,
        Err(e) => {
            streams.finish(Outcome::Failed(e.to_string())).await;
            return Ok(());
        }
    };
    let config = ExecConfig {
        args: req.cmd.clone(),
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr && !req.tty,
        ..Default::default()
    };
    let id = match engine::exec_create(&engine, &req.container_id, config).await {
        Ok(id) => id,
        Err(e) => {
            streams.finish(Outcome::Failed(e.to_string())).await;
            return Ok(());
        }
    };
    let io = match engine::exec_start(&engine, &id).await {
        Ok(io) => io,
        Err(e) => {
            engine::exec_forget(&engine, &id);
            streams.finish(Outcome::Failed(e.to_string())).await;
            return Ok(());
        }
    };
    let completed =
        remotecommand::pump(&engine, Terminal::Exec(id.clone()), io, &mut streams).await;
    if !completed {
        // As containerd: a client that goes away takes its exec with it.
        tracing::debug!(exec = %id, "exec client disconnected; killing the process");
        if let Err(e) = engine::exec_kill(&engine, &id, SIGKILL).await {
            tracing::debug!(exec = %id, "killing a disconnected exec: {e}");
        }
        engine::exec_forget(&engine, &id);
        return Ok(());
    }
    let outcome = match engine::exec_wait(&engine, &id).await {
        Ok(code) => Outcome::Exited {
            code,
            command: req.cmd,
        },
        Err(e) => Outcome::Failed(e.to_string()),
    };
    // Reported: nobody inspects a CRI exec afterwards.
    engine::exec_forget(&engine, &id);
    streams.finish(outcome).await;
    Ok(())
}
