//! `ExecSync`: a process in a running container through the engine's exec API, its
//! stdout and stderr read whole (up to kubelet's cap), a timeout that kills it.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{self as engine, Engine, ExecConfig, OutputReader};
use k8s_cri::v1 as cri;
use tokio::io::AsyncReadExt;

use super::cri_record;
use crate::CriError;

/// Most output kept per stream (kubelet's own cap on exec output is 16 MiB).
const OUTPUT_LIMIT: usize = 16 << 20;

pub(crate) async fn exec_sync(
    cri: &crate::Cri,
    req: cri::ExecSyncRequest,
) -> Result<cri::ExecSyncResponse, CriError> {
    let engine = cri.engine("ExecSync")?;
    run(&engine, req).await
}

async fn run(
    engine: &Arc<Engine>,
    req: cri::ExecSyncRequest,
) -> Result<cri::ExecSyncResponse, CriError> {
    let id = req.container_id.clone();
    if req.cmd.is_empty() {
        return Err(CriError::InvalidArgument(
            "ExecSync without a command".into(),
        ));
    }
    let record = cri_record(engine, &id)?;
    if !record.state.status.has_task() {
        return Err(CriError::FailedPrecondition(format!(
            "container {id} is not running"
        )));
    }
    let config = ExecConfig {
        args: req.cmd.clone(),
        stdout: true,
        stderr: true,
        ..ExecConfig::default()
    };
    let exec = engine::exec_create(engine, &id, config).await?;
    let result = finish(engine, &id, &exec, &req).await;
    engine::exec_forget(engine, &exec);
    result
}

async fn finish(
    engine: &Arc<Engine>,
    id: &str,
    exec: &str,
    req: &cri::ExecSyncRequest,
) -> Result<cri::ExecSyncResponse, CriError> {
    let io = engine::exec_start(engine, exec).await?;
    let outputs = async { tokio::join!(read_capped(io.stdout), read_capped(io.stderr)) };
    let limit = (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64));
    let done = async {
        let (stdout, stderr) = outputs.await;
        let code = engine::exec_wait(engine, exec).await?;
        Ok::<_, CriError>((stdout, stderr, code))
    };
    let (stdout, stderr, code) = match limit {
        None => done.await?,
        Some(limit) => match tokio::time::timeout(limit, done).await {
            Ok(r) => r?,
            Err(_) => {
                let sigkill = nix::sys::signal::Signal::SIGKILL as i32;
                if let Err(e) = engine::exec_kill(engine, exec, sigkill).await {
                    tracing::debug!(id, exec, "killing a timed-out exec: {e}");
                }
                let _ = engine::exec_wait(engine, exec).await;
                return Err(CriError::DeadlineExceeded(format!(
                    "command {:?} in container {id} timed out after {}s",
                    req.cmd, req.timeout
                )));
            }
        },
    };
    Ok(cri::ExecSyncResponse {
        stdout,
        stderr,
        exit_code: code,
    })
}

/// Reads a stream to its end, keeping the first [`OUTPUT_LIMIT`] bytes: the rest is
/// read and dropped so that the process never blocks on a full pipe.
async fn read_capped(stream: Option<OutputReader>) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
