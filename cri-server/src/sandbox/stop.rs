//! `StopPodSandbox`: containers stopped, network torn down; idempotent.

use std::time::Duration;

use berth_cni::Netns;
use k8s_cri::v1 as cri;

use super::pod_network;
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
    // namespace with it.
    super::pod_init::stop(&cri.pid_pin(&record.id), &record.dir);
    if let Some(netns) = &record.netns {
        let pod = pod_network(&record.id, &record.config, netns.clone());
        let cni = cri.inner.cni.clone();
        tokio::task::spawn_blocking(move || cni.teardown(&pod))
            .await
            .map_err(|e| CriError::Internal(format!("CNI teardown task: {e}")))??;
        Netns::at(netns.clone()).remove()?;
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
