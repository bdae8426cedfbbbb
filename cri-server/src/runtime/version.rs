//! `Version`.

use k8s_cri::v1 as cri;

use crate::{CRI_API_VERSION, RUNTIME_NAME};

/// kubelet's version field is the CRI's own wire version, "0.1.0" for every runtime.
const KUBELET_API_VERSION: &str = "0.1.0";

pub(super) fn version(_req: &cri::VersionRequest) -> cri::VersionResponse {
    cri::VersionResponse {
        version: KUBELET_API_VERSION.into(),
        runtime_name: RUNTIME_NAME.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: CRI_API_VERSION.into(),
    }
}
