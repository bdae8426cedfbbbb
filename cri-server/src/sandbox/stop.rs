//! `StopPodSandbox`: containers stopped, network torn down; idempotent.

use std::time::Duration;

use k8s_cri::v1 as cri;

use super::pod_config;
use super::store::{SandboxRecord, SandboxState};
use crate::{Cri, CriError};

pub async fn stop_pod_sandbox(
    cri: &Cri,
    req: cri::StopPodSandboxRequest,
) -> Result<cri::StopPodSandboxResponse, CriError> {
    let Some(record) = cri.inner.sandboxes.find(&req.pod_sandbox_id)? else {
        // Already reclaimed: stopping is idempotent.
        return Ok(cri::StopPodSandboxResponse {});
    };
    let _guard = cri.inner.sandbox_lock.lock().await;
    stop(cri, &record).await?;
    Ok(cri::StopPodSandboxResponse {})
}

/// Stops the sandbox's containers and releases its network. Safe to repeat.
pub(crate) async fn stop(cri: &Cri, record: &SandboxRecord) -> Result<(), CriError> {
    if let Some(engine) = cri.inner.engine.clone() {
        for id in crate::containers::sandbox_containers(&engine, &record.id)? {
            crate::containers::lifecycle::stop_container(&engine, &id, Duration::ZERO).await?;
        }
    }
    // The pod's init goes after its containers, taking any process left in its PID
    // namespace with it; then the network.
    let pod = pod_config(&record.config, String::new());
    cri.inner
        .pods
        .release(&record.id, &pod, &record.dir, record.netns.as_deref())
        .await?;
    if record.netns.is_some() {
        cri.inner.sandboxes.clear_network(&record.id)?;
    }
    if record.state != SandboxState::NotReady {
        cri.inner
            .sandboxes
            .set_state(&record.id, SandboxState::NotReady)?;
    }
    tracing::info!(sandbox = %record.id, "pod sandbox stopped");
    Ok(())
}
