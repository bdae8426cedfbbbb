//! `RemovePodSandbox`: stop if needed, remove containers, pins, files and the record.
//! A missing sandbox is not an error.

use k8s_cri::v1 as cri;

use crate::{Cri, CriError};

pub async fn remove_pod_sandbox(
    cri: &Cri,
    req: cri::RemovePodSandboxRequest,
) -> Result<cri::RemovePodSandboxResponse, CriError> {
    let Some(record) = cri.inner.sandboxes.find(&req.pod_sandbox_id)? else {
        return Ok(cri::RemovePodSandboxResponse {});
    };
    let _guard = cri.inner.sandbox_lock.lock().await;
    super::stop::stop(cri, &record).await?;
    if let Some(engine) = cri.inner.engine.clone() {
        for id in crate::containers::sandbox_containers(&engine, &record.id)? {
            crate::containers::lifecycle::remove_container(&engine, &id).await?;
        }
    }
    cri.inner
        .pods
        .remove(&record.id, &super::pod_setup(&record))?;
    cri.inner.sandboxes.delete(&record.id)?;
    tracing::info!(sandbox = %record.id, "pod sandbox removed");
    Ok(cri::RemovePodSandboxResponse {})
}
