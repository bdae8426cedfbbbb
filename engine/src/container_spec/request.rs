//! What an image's config contributes to a container's OCI spec.

use std::collections::BTreeMap;

/// What an image's config contributes (`config` in the OCI image config).
#[derive(Debug, Clone, Default)]
pub struct ImageDefaults {
    pub user: String,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: String,
    pub stop_signal: Option<String>,
    /// `EXPOSE`: the port keys (`80/tcp`).
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}
