//! Container RPCs: validated against the sandbox records, run by the [`ContainerEngine`].
//!
//! [`ContainerEngine`]: crate::ContainerEngine

use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::engine::missing;
use crate::{Cri, CriError};

pub(super) async fn create(
    cri: &Cri,
    req: cri::CreateContainerRequest,
) -> Result<cri::CreateContainerResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("CreateContainer"))?;
    let record = cri.sandbox(&req.pod_sandbox_id)?;
    if record.state != crate::sandbox::store::SandboxState::Ready {
        return Err(CriError::FailedPrecondition(format!(
            "sandbox {} is not ready; containers are created only in ready sandboxes",
            record.id
        )));
    }
    let ctx = cri.sandbox_context(&record);
    let container_id = engine.create(&ctx, req).await?;
    crate::error::record_id("container", &container_id);
    Ok(cri::CreateContainerResponse { container_id })
}

pub(super) async fn start(
    cri: &Cri,
    req: cri::StartContainerRequest,
) -> Result<cri::StartContainerResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("StartContainer"))?;
    engine.start(&req.container_id).await?;
    Ok(cri::StartContainerResponse {})
}

pub(super) async fn stop(
    cri: &Cri,
    req: cri::StopContainerRequest,
) -> Result<cri::StopContainerResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("StopContainer"))?;
    let timeout = Duration::from_secs(req.timeout.max(0) as u64);
    engine.stop(&req.container_id, timeout).await?;
    Ok(cri::StopContainerResponse {})
}

pub(super) async fn remove(
    cri: &Cri,
    req: cri::RemoveContainerRequest,
) -> Result<cri::RemoveContainerResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("RemoveContainer"))?;
    engine.remove(&req.container_id).await?;
    Ok(cri::RemoveContainerResponse {})
}

pub(super) async fn list(
    cri: &Cri,
    req: cri::ListContainersRequest,
) -> Result<cri::ListContainersResponse, CriError> {
    // Without an engine there are no containers: an empty list is the truth.
    let containers = match cri.inner.engine.clone() {
        Some(engine) => engine.list(req.filter).await?,
        None => Vec::new(),
    };
    Ok(cri::ListContainersResponse { containers })
}

pub(super) async fn status(
    cri: &Cri,
    req: cri::ContainerStatusRequest,
) -> Result<cri::ContainerStatusResponse, CriError> {
    match cri.inner.engine.clone() {
        Some(engine) => engine.status(&req.container_id, req.verbose).await,
        None => Err(CriError::NotFound {
            what: "container",
            id: req.container_id,
        }),
    }
}

pub(super) async fn exec_sync(
    cri: &Cri,
    req: cri::ExecSyncRequest,
) -> Result<cri::ExecSyncResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("ExecSync"))?;
    engine.exec_sync(req).await
}

pub(super) async fn reopen_log(
    cri: &Cri,
    req: cri::ReopenContainerLogRequest,
) -> Result<cri::ReopenContainerLogResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("ReopenContainerLog"))?;
    engine.reopen_log(&req.container_id).await?;
    Ok(cri::ReopenContainerLogResponse {})
}

pub(super) async fn stats(
    cri: &Cri,
    req: cri::ContainerStatsRequest,
) -> Result<cri::ContainerStatsResponse, CriError> {
    match cri.inner.engine.clone() {
        Some(engine) => Ok(cri::ContainerStatsResponse {
            stats: Some(engine.stats(&req.container_id).await?),
        }),
        None => Err(CriError::NotFound {
            what: "container",
            id: req.container_id,
        }),
    }
}

pub(super) async fn list_stats(
    cri: &Cri,
    req: cri::ListContainerStatsRequest,
) -> Result<cri::ListContainerStatsResponse, CriError> {
    // Without an engine there are no containers, so no stats.
    let stats = match cri.inner.engine.clone() {
        Some(engine) => engine.list_stats(req.filter).await?,
        None => Vec::new(),
    };
    Ok(cri::ListContainerStatsResponse { stats })
}

pub(super) async fn update_resources(
    cri: &Cri,
    req: cri::UpdateContainerResourcesRequest,
) -> Result<cri::UpdateContainerResourcesResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("UpdateContainerResources"))?;
    let linux = req.linux.ok_or_else(|| {
        CriError::InvalidArgument("UpdateContainerResources without linux resources".into())
    })?;
    engine.update_resources(&req.container_id, linux).await?;
    Ok(cri::UpdateContainerResourcesResponse {})
}
