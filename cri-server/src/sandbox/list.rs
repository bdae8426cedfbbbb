//! `ListPodSandbox` with id-prefix, state and label-selector filters.

use k8s_cri::v1 as cri;

use super::store::SandboxRecord;
use crate::{Cri, CriError};

pub async fn list_pod_sandbox(
    cri: &Cri,
    req: cri::ListPodSandboxRequest,
) -> Result<cri::ListPodSandboxResponse, CriError> {
    let filter = req.filter.unwrap_or_default();
    let items = cri
        .inner
        .sandboxes
        .list()?
        .into_iter()
        .filter(|r| matches(r, &filter))
        .map(|r| cri::PodSandbox {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            state: r.state.to_cri(),
            created_at: r.created_at,
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
            runtime_handler: r.runtime_handler.clone(),
        })
        .collect();
    Ok(cri::ListPodSandboxResponse { items })
}

fn matches(r: &SandboxRecord, f: &cri::PodSandboxFilter) -> bool {
    if !f.id.is_empty() && !r.id.starts_with(&f.id) {
        return false;
    }
    if let Some(state) = &f.state {
        if state.state != r.state.to_cri() {
            return false;
        }
    }
    f.label_selector
        .iter()
        .all(|(k, v)| r.config.labels.get(k) == Some(v))
}
