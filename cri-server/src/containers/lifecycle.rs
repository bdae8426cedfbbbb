//! `StartContainer`, `StopContainer`, `RemoveContainer`. Stop and remove of an unknown
//! id succeed (kubelet retries them).

use std::time::Duration;

use berth_engine::{self as engine, Engine, Status};
use k8s_cri::v1 as cri;

use super::{cri_record, is_missing};
use crate::{Cri, CriError};

pub(crate) async fn start(
    cri: &Cri,
    req: cri::StartContainerRequest,
) -> Result<cri::StartContainerResponse, CriError> {
    let engine = cri.engine("StartContainer")?;
    let id = req.container_id.as_str();
    let _guard = engine.lock(id).await;
    let record = cri_record(&engine, id)?;
    if record.state.status != Status::Created {
        return Err(CriError::FailedPrecondition(format!(
            "container {id} is {}; only a created container can be started",
            record.state.status.as_str()
        )));
    }
    engine::start_locked(&engine, id)
        .await
        .map_err(CriError::from)?;
    Ok(cri::StartContainerResponse {})
}

pub(crate) async fn stop(
    cri: &Cri,
    req: cri::StopContainerRequest,
) -> Result<cri::StopContainerResponse, CriError> {
    let engine = cri.engine("StopContainer")?;
    let timeout = Duration::from_secs(req.timeout.max(0) as u64);
    stop_container(&engine, &req.container_id, timeout).await?;
    Ok(cri::StopContainerResponse {})
}

/// SIGTERM (or the image's stop signal), then SIGKILL after `timeout`.
pub(crate) async fn stop_container(
    engine: &std::sync::Arc<Engine>,
    id: &str,
    timeout: Duration,
) -> Result<(), CriError> {
    let _guard = engine.lock(id).await;
    if !is_known(engine, id)? {
        return Ok(());
    }
    let secs = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
    engine::stop_locked(engine, id, Some(secs))
        .await
        .map_err(CriError::from)?;
    Ok(())
}

pub(crate) async fn remove(
    cri: &Cri,
    req: cri::RemoveContainerRequest,
) -> Result<cri::RemoveContainerResponse, CriError> {
    let engine = cri.engine("RemoveContainer")?;
    remove_container(&engine, &req.container_id).await?;
    Ok(cri::RemoveContainerResponse {})
}

pub(crate) async fn remove_container(
    engine: &std::sync::Arc<Engine>,
    id: &str,
) -> Result<(), CriError> {
    let _guard = engine.lock(id).await;
    if !is_known(engine, id)? {
        return Ok(());
    }
    engine::remove_locked(engine, id, true)
        .await
        .map_err(CriError::from)
}

/// Whether `id` is a CRI container; an unknown id is no error for stop and remove
/// (kubelet retries them).
fn is_known(engine: &Engine, id: &str) -> Result<bool, CriError> {
    match cri_record(engine, id) {
        Ok(_) => Ok(true),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
