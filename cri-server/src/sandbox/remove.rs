//! `RemovePodSandbox`: stop if needed, remove containers, pins, files and the record.
//! A missing sandbox is not an error.

use k8s_cri::v1 as cri;

use super::{files, namespaces};
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
    // Keep going after an error so one stuck piece does not strand the rest; report all.
    let mut errors = Vec::new();
    let pid_pin = cri.pid_pin(&record.id);
    for pin in record
        .ipc_ns
        .iter()
        .chain(&record.uts_ns)
        .chain(Some(&pid_pin))
    {
        if let Err(e) = namespaces::remove_pin(pin) {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = files::unmount_shm(&record.dir) {
        errors.push(e.to_string());
    }
    match std::fs::remove_dir_all(&record.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("remove {}: {e}", record.dir.display())),
    }
    if !errors.is_empty() {
        return Err(CriError::Internal(format!(
            "removing pod sandbox {}: {}",
            record.id,
            errors.join("; ")
        )));
    }
    cri.inner.sandboxes.delete(&record.id)?;
    tracing::info!(sandbox = %record.id, "pod sandbox removed");
    Ok(cri::RemovePodSandboxResponse {})
}
