//! `ExecSync`: a process in a running container through its shim's Exec, stdout and
//! stderr captured to files in the bundle, a timeout that kills it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_engine::{self as engine, Engine, EngineError};
use k8s_cri::v1 as cri;
use oci_spec::runtime::Spec;

use super::{cri_record, read_capped};
use crate::CriError;

/// Most output kept per stream (kubelet's own cap on exec output is 16 MiB).
const OUTPUT_LIMIT: u64 = 16 << 20;

static NEXT_EXEC: AtomicU64 = AtomicU64::new(0);

fn exec_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "sync-{nanos:x}-{:x}",
        NEXT_EXEC.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the output files when the exec is done, whatever happened.
struct Outputs {
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Outputs {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

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
    let dir = engine.dir(&id);
    let spec = process_spec(&dir.join("config.json"), &req.cmd)?;
    let exec = exec_id();
    let outputs = Outputs {
        stdout: dir.join(format!("{exec}.stdout")),
        stderr: dir.join(format!("{exec}.stderr")),
    };

    let started = {
        let (d, id, exec) = (Arc::clone(engine), id.clone(), exec.clone());
        let (out, err) = (outputs.stdout.clone(), outputs.stderr.clone());
        engine::blocking(move || {
            let shim = engine::shim_of(&d, &id)?;
            shim.exec(&id, &exec, &spec, &out, &err)?;
            if let Err(e) = shim.start_exec(&id, &exec) {
                let _ = shim.delete_exec(&id, &exec);
                return Err(e.into());
            }
            Ok(())
        })
        .await
    };
    started.map_err(CriError::from)?;

    let wait = {
        let (d, id, exec) = (Arc::clone(engine), id.clone(), exec.clone());
        tokio::task::spawn_blocking(move || -> Result<u32, EngineError> {
            Ok(engine::shim_of(&d, &id)?.wait_exec(&id, &exec)?)
        })
    };
    tokio::pin!(wait);
    let limit = (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64));
    let mut timed_out = false;
    let waited = match limit {
        Some(limit) => match tokio::time::timeout(limit, &mut wait).await {
            Ok(r) => r,
            Err(_) => {
                timed_out = true;
                let (d, cid, e) = (Arc::clone(engine), id.clone(), exec.clone());
                let killed = engine::blocking(move || {
                    let sigkill = nix::sys::signal::Signal::SIGKILL as u32;
                    Ok(engine::shim_of(&d, &cid)?.kill_exec(&cid, &e, sigkill)?)
                })
                .await;
                if let Err(e) = killed {
                    tracing::warn!(id = %id, exec = %exec, "killing a timed-out exec: {e}");
                }
                wait.await
            }
        },
        None => wait.await,
    };
    let code = waited
        .map_err(|e| CriError::Internal(format!("exec wait task: {e}")))?
        .map_err(CriError::from);
    {
        let (d, cid, e) = (Arc::clone(engine), id.clone(), exec.clone());
        let deleted =
            engine::blocking(move || Ok(engine::shim_of(&d, &cid)?.delete_exec(&cid, &e)?)).await;
        if let Err(e) = deleted {
            tracing::debug!(id = %id, exec = %exec, "deleting the exec: {e}");
        }
    }
    if timed_out {
        return Err(CriError::DeadlineExceeded(format!(
            "command {:?} in container {id} timed out after {}s",
            req.cmd, req.timeout
        )));
    }
    let code = code?;
    let stdout = read_capped(&outputs.stdout, OUTPUT_LIMIT)?;
    let stderr = read_capped(&outputs.stderr, OUTPUT_LIMIT)?;
    Ok(cri::ExecSyncResponse {
        stdout,
        stderr,
        exit_code: code as i32,
    })
}

/// The container's own process (user, env, cwd, capabilities) running `cmd`, without
/// a terminal.
fn process_spec(config_json: &std::path::Path, cmd: &[String]) -> Result<Vec<u8>, CriError> {
    let bytes = std::fs::read(config_json)
        .map_err(|e| CriError::Internal(format!("reading {}: {e}", config_json.display())))?;
    let spec: Spec = serde_json::from_slice(&bytes)
        .map_err(|e| CriError::Internal(format!("parsing {}: {e}", config_json.display())))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| CriError::Internal(format!("{} has no process", config_json.display())))?;
    process.set_args(Some(cmd.to_vec()));
    process.set_terminal(Some(false));
    serde_json::to_vec(&process)
        .map_err(|e| CriError::Internal(format!("encoding the exec process: {e}")))
}
