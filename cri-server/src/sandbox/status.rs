//! `PodSandboxStatus`.

use std::collections::HashMap;

use k8s_cri::v1 as cri;

use super::namespace_options;
use super::store::SandboxRecord;
use crate::{Cri, CriError};

pub async fn pod_sandbox_status(
    cri: &Cri,
    req: cri::PodSandboxStatusRequest,
) -> Result<cri::PodSandboxStatusResponse, CriError> {
    let record = cri.sandbox(&req.pod_sandbox_id)?;
    let mut info = HashMap::new();
    if req.verbose {
        let detail = serde_json::json!({
            "id": record.id,
            // The pod's init when its containers share a PID namespace (no pause
            // process otherwise).
            "pid": cri.inner.pods.init_pid(&record.id, &record.dir).unwrap_or(0),
            "runtimeHandler": record.runtime_handler,
            "netns": record.netns,
            "ipcNamespace": record.ipc_ns,
            "utsNamespace": record.uts_ns,
            "podDir": record.dir,
            "pauseImage": serde_json::Value::Null,
            // The whole config, where containerd reports it too: kubelet's pod
            // resources and RuntimeClass overhead are `config.linux.resources` and
            // `config.linux.overhead` (recorded with the sandbox, in its config).
            "config": record.config,
        });
        info.insert("info".to_string(), detail.to_string());
    }
    Ok(cri::PodSandboxStatusResponse {
        status: Some(to_status(&record)),
        info,
        ..Default::default()
    })
}

pub(crate) fn to_status(r: &SandboxRecord) -> cri::PodSandboxStatus {
    let mut ips = r.ips.iter();
    let network = cri::PodSandboxNetworkStatus {
        ip: ips.next().cloned().unwrap_or_default(),
        additional_ips: ips.map(|ip| cri::PodIp { ip: ip.clone() }).collect(),
    };
    cri::PodSandboxStatus {
        id: r.id.clone(),
        metadata: r.config.metadata.clone(),
        state: r.state.to_cri(),
        created_at: r.created_at,
        network: Some(network),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(namespace_options(&r.config)),
            }),
        }),
        labels: r.config.labels.clone(),
        annotations: r.config.annotations.clone(),
        runtime_handler: r.runtime_handler.clone(),
    }
}
