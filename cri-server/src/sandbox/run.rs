//! `RunPodSandbox`: namespaces → CNI ADD → pod files → record. Undone on any failure.

use std::path::PathBuf;

use berth_cni::Netns;
use k8s_cri::v1 as cri;

use super::store::{SandboxRecord, SandboxState};
use super::{files, is_node, namespace_options, namespaces, pod_init, pod_network};
use crate::{Cri, CriError};

/// What has been set up so far; dropping it undoes everything not disarmed.
struct Rollback {
    cri: Cri,
    id: String,
    dir: Option<PathBuf>,
    netns: Option<Netns>,
    network: Option<berth_cni::PodNetwork>,
    pins: Vec<PathBuf>,
    /// The pod init's PID namespace pin, the init to kill first.
    pod_init: Option<PathBuf>,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if let Some(pod) = self.network.take() {
            if let Err(e) = self.cri.inner.cni.teardown(&pod) {
                tracing::warn!(sandbox = %self.id, error = %e, "rollback: CNI DEL failed");
            }
        }
        if let Some(ns) = self.netns.take() {
            if let Err(e) = ns.remove() {
                tracing::warn!(sandbox = %self.id, error = %e, "rollback: netns removal failed");
            }
        }
        if let (Some(pin), Some(dir)) = (self.pod_init.take(), self.dir.as_ref()) {
            pod_init::stop(&pin, dir);
            if let Err(e) = namespaces::remove_pin(&pin) {
                tracing::warn!(sandbox = %self.id, error = %e, "rollback: PID namespace pin removal failed");
            }
        }
        for pin in self.pins.drain(..) {
            if let Err(e) = namespaces::remove_pin(&pin) {
                tracing::warn!(sandbox = %self.id, error = %e, "rollback: namespace pin removal failed");
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = files::unmount_shm(&dir) {
                tracing::warn!(sandbox = %self.id, error = %e, "rollback: /dev/shm unmount failed");
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Rollback {
    fn disarm(mut self) {
        self.dir = None;
        self.netns = None;
        self.network = None;
        self.pins.clear();
        self.pod_init = None;
    }
}

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
    let ns_opts = namespace_options(&config);
    let host_network = is_node(ns_opts.network);
    let host_ipc = is_node(ns_opts.ipc);
    let hostname = files::pod_hostname(&config)?;
    let resolv = files::resolv_conf(config.dns_config.as_ref())?;

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
    let dir = cri.pods_dir().join(&id);
    std::fs::create_dir_all(&dir).map_err(CriError::io("create pod dir", &dir))?;
    let mut rollback = Rollback {
        cri: cri.clone(),
        id: id.clone(),
        dir: Some(dir.clone()),
        netns: None,
        network: None,
        pins: Vec::new(),
        pod_init: None,
    };

    let (ipc_ns, uts_ns) = namespaces::pin_ipc_uts(
        &cri.state_dir(),
        &id,
        !host_ipc,
        (!host_network).then_some(hostname.as_str()),
    )?;
    rollback.pins.extend(ipc_ns.iter().cloned());
    rollback.pins.extend(uts_ns.iter().cloned());

    // POD (CRI's default; kubelet says CONTAINER unless shareProcessNamespace) gives
    // the pod one PID namespace with berth's init as PID 1. A server without a pod
    // init leaves each container its own.
    if let (true, Some(program)) = (
        ns_opts.pid == cri::NamespaceMode::Pod as i32,
        cri.inner.config.pod_init.clone(),
    ) {
        let pin = cri.pid_pin(&id);
        let (p, d) = (pin.clone(), dir.clone());
        tokio::task::spawn_blocking(move || pod_init::start(&program, &p, &d))
            .await
            .map_err(|e| CriError::Internal(format!("pod init task: {e}")))??;
        rollback.pod_init = Some(pin);
    }

    let mut ips = Vec::new();
    let mut netns_path = None;
    if !host_network {
        let ns = Netns::create(&cri.netns_dir(), &id)?;
        netns_path = Some(ns.path().to_path_buf());
        let pod = pod_network(&id, &config, ns.path().to_path_buf());
        rollback.netns = Some(ns);
        let cni = cri.inner.cni.clone();
        let setup_pod = pod.clone();
        let attached = tokio::task::spawn_blocking(move || cni.setup(&setup_pod))
            .await
            .map_err(|e| CriError::Internal(format!("CNI setup task: {e}")))??;
        rollback.network = Some(pod);
        ips = attached.ips.iter().map(|ip| ip.to_string()).collect();
    }

    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| files::hosts(&hostname, &[]))
    } else {
        files::hosts(&hostname, &ips)
    };
    files::write(&dir, files::HOSTNAME, &format!("{hostname}\n"))?;
    files::write(&dir, files::RESOLV_CONF, &resolv)?;
    files::write(&dir, files::HOSTS, &hosts)?;
    if !host_ipc {
        files::mount_shm(&dir)?;
    }

    let record = SandboxRecord {
        id: id.clone(),
        name_key,
        state: SandboxState::Ready,
        created_at: now_nanos(),
        config,
        runtime_handler: req.runtime_handler,
        netns: netns_path,
        ipc_ns,
        uts_ns,
        ips,
        dir,
    };
    cri.inner.sandboxes.insert(&record)?;
    rollback.disarm();
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
