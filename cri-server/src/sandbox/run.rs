//! `RunPodSandbox`: the config checked and translated, the pod set up by the engine
//! (namespaces, init, CNI ADD, files; all undone on failure), then the record.

use k8s_cri::v1 as cri;

use super::store::{SandboxRecord, SandboxState};
use super::{pod_config, pod_hostname};
use crate::{Cri, CriError};

pub async fn run_pod_sandbox(
    cri: &Cri,
    req: cri::RunPodSandboxRequest,
) -> Result<cri::RunPodSandboxResponse, CriError> {
    let config = req
        .config
        .ok_or_else(|| CriError::InvalidArgument("RunPodSandbox without a config".into()))?;
    let meta = config.metadata.clone().unwrap_or_default();
    for (field, v) in [
        ("name", &meta.name),
        ("namespace", &meta.namespace),
        ("uid", &meta.uid),
    ] {
        if v.is_empty() {
            return Err(CriError::InvalidArgument(format!(
                "pod sandbox metadata.{field} is empty"
            )));
        }
    }
    let handlers = cri.runtime_handlers();
    if !req.runtime_handler.is_empty() && !handlers.contains(&req.runtime_handler) {
        return Err(CriError::InvalidArgument(format!(
            "runtime handler {:?} is not configured (configured: {}; add it under [runtimes] in berthd's config)",
            req.runtime_handler,
            handlers.join(", ")
        )));
    }
    let name_key = format!(
        "{}_{}_{}_{}",
        meta.name, meta.namespace, meta.uid, meta.attempt
    );
    let pod = pod_config(&config, pod_hostname(&config)?);

    let _guard = cri.inner.sandbox_lock.lock().await;
    if let Some(existing) = cri.inner.sandboxes.by_name_key(&name_key)? {
        return Err(CriError::AlreadyExists(format!(
            "pod sandbox {name_key} already exists as {}; remove it before creating it again",
            existing.id
        )));
    }
    let id = new_id();
    // Into the call's span (a guard entered here would be held across the awaits
    // below and leak the span into whatever else the thread polls).
    crate::error::record_id("pod", &id);
    let setup = cri.inner.pods.setup(&id, &pod).await?;
    let record = SandboxRecord {
        id: id.clone(),
        name_key,
        state: SandboxState::Ready,
        created_at: now_nanos(),
        config,
        runtime_handler: req.runtime_handler,
        netns: setup.netns.clone(),
        ipc_ns: setup.ipc_ns.clone(),
        uts_ns: setup.uts_ns.clone(),
        ips: setup.ips.clone(),
        dir: setup.dir.clone(),
    };
    if let Err(e) = cri.inner.sandboxes.insert(&record) {
        let undone = cri
            .inner
            .pods
            .release(&id, &pod, &setup.dir, setup.netns.as_deref())
            .await;
        if let Err(u) = undone.and_then(|()| cri.inner.pods.remove(&id, &setup)) {
            tracing::warn!(sandbox = %id, error = %u, "undoing a pod whose record failed");
        }
        return Err(e);
    }
    tracing::info!(name = %record.name_key, ips = ?record.ips, "pod sandbox ready");
    Ok(cri::RunPodSandboxResponse { pod_sandbox_id: id })
}

fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
