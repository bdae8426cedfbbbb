//! `Status`: RuntimeReady and NetworkReady with reasons.

use std::collections::HashMap;

use k8s_cri::v1 as cri;

use crate::{Cri, CriError};

pub(super) async fn status(
    cri: &Cri,
    req: cri::StatusRequest,
) -> Result<cri::StatusResponse, CriError> {
    let cni = cri.inner.pods.cni().clone();
    // Network status may run plugins (VERSION, STATUS): keep it off the async workers.
    let net = tokio::task::spawn_blocking(move || cni.status())
        .await
        .map_err(|e| CriError::Internal(format!("network status task: {e}")))?;
    let runtime_ready = runtime_condition(cri);
    let network_ready = cri::RuntimeCondition {
        r#type: "NetworkReady".into(),
        status: net.ready,
        reason: net.reason.clone(),
        message: net.message.clone(),
    };
    let mut info = HashMap::new();
    if req.verbose {
        let detail = serde_json::json!({
            "network": net.network,
            "cniConfDir": cri.config().cni.conf_dir,
            "podCIDR": cri.pod_cidr(),
            "stateDir": cri.state_dir(),
            "containerEngine": cri.inner.engine.is_some(),
        });
        info.insert("config".to_string(), detail.to_string());
    }
    // The default handler (named "") first, as kubelet looks it up.
    let runtime_handlers = std::iter::once(String::new())
        .chain(cri.runtime_handlers())
        .map(|name| cri::RuntimeHandler {
            name,
            features: Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: false,
                user_namespaces: false,
            }),
        })
        .collect();
    Ok(cri::StatusResponse {
        status: Some(cri::RuntimeStatus {
            conditions: vec![runtime_ready, network_ready],
        }),
        info,
        runtime_handlers,
        ..Default::default()
    })
}

/// RuntimeReady: the state dir is writable and the sandbox store answers.
fn runtime_condition(cri: &Cri) -> cri::RuntimeCondition {
    let problem = match std::fs::create_dir_all(cri.state_dir()) {
        Err(e) => Some((
            "StateDirUnavailable",
            format!("{}: {e}", cri.state_dir().display()),
        )),
        Ok(()) => match cri.inner.sandboxes.count() {
            Err(e) => Some(("SandboxStoreUnavailable", e.to_string())),
            Ok(_) => None,
        },
    };
    match problem {
        None => cri::RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            ..Default::default()
        },
        Some((reason, message)) => cri::RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: false,
            reason: reason.into(),
            message,
        },
    }
}
