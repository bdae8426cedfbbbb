//! The image configuration: the fields the runtime needs.

use std::collections::BTreeMap;

use berth_snapshotter::Digest;
use serde::{Deserialize, Serialize};

/// An OCI / Docker image configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `commit -m`: the message, as Docker keeps it at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

/// What a container of this image runs with by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's `HEALTHCHECK` (`{"Test": […], "Interval": ns, …}`), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    /// `SHELL`: what shell-form RUN, CMD and ENTRYPOINT run under (Docker's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `ONBUILD` triggers, as written, run by a build FROM this image.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "OnBuild")]
    pub on_build: Option<Vec<String>>,
}

/// `rootfs`: the diff IDs (digests of the uncompressed layer tars), bottom first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// One `history` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The chain IDs of the layers, bottom first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        berth_snapshotter::digest::chain_ids(&self.rootfs.diff_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runtime_fields() {
        let d = format!("sha256:{}", "e".repeat(64));
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"User":"www-data","Env":["PATH=/bin"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"WorkingDir":"/srv","Labels":{{"a":"b"}},"ExposedPorts":{{"80/tcp":{{}}}},"Volumes":{{"/data":{{}}}},"StopSignal":"SIGQUIT"}},"rootfs":{{"type":"layers","diff_ids":["{d}"]}},"history":[{{"created_by":"x"}}]}}"#
        );
        let c = ImageConfig::parse(json.as_bytes()).unwrap();
        let cc = c.config.clone().unwrap();
        assert_eq!(cc.user.as_deref(), Some("www-data"));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGQUIT"));
        assert!(cc.exposed_ports.unwrap().contains_key("80/tcp"));
        assert_eq!(c.chain_ids(), c.rootfs.diff_ids);
        assert_eq!(c.history.len(), 1);
    }
}
