//! `ReopenContainerLog`: kubelet rotates a container's log by renaming it away, then
//! asks for a new file at the same path. The shim writes the log, so the shim reopens
//! it: SIGUSR1 to the shim (its pid from the Task API's Connect).

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine::{self as engine, Engine};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cri_record;
use crate::CriError;

/// How long the shim gets to create the new file.
const REOPEN_LIMIT: Duration = Duration::from_secs(2);

pub(crate) async fn reopen_log(
    cri: &crate::Cri,
    req: k8s_cri::v1::ReopenContainerLogRequest,
) -> Result<k8s_cri::v1::ReopenContainerLogResponse, CriError> {
    let engine = cri.engine("ReopenContainerLog")?;
    reopen(&engine, &req.container_id).await?;
    Ok(k8s_cri::v1::ReopenContainerLogResponse {})
}

async fn reopen(engine: &Arc<Engine>, id: &str) -> Result<(), CriError> {
    let record = cri_record(engine, id)?;
    if !record.state.status.has_task() {
        return Err(CriError::FailedPrecondition(format!(
            "container {id} is not running; only a running container's log is reopened"
        )));
    }
    let log = engine.log_of(&record);
    let shim_pid = {
        let (d, cid) = (Arc::clone(engine), id.to_string());
        engine::blocking(move || Ok(engine::shim_of(&d, &cid)?.shim_pid(&cid)?))
            .await
            .map_err(CriError::from)?
    };
    let pid = i32::try_from(shim_pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| CriError::Internal(format!("the shim of {id} reported pid {shim_pid}")))?;
    kill(Pid::from_raw(pid), Signal::SIGUSR1).map_err(|e| {
        CriError::Internal(format!("asking the shim of {id} to reopen its log: {e}"))
    })?;
    let deadline = Instant::now() + REOPEN_LIMIT;
    while !log.exists() {
        if Instant::now() > deadline {
            return Err(CriError::Internal(format!(
                "the shim of {id} did not reopen {} within {REOPEN_LIMIT:?}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tracing::info!(id, log = %log.display(), "container log reopened");
    Ok(())
}
