//! What the runtime knows about a pod's network: identity, namespace, and the capability
//! arguments (`portMappings`, `dns`, `bandwidth`, `ips`) plugins may ask for.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A pod to attach to (or detach from) the network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodNetwork {
    /// The sandbox id: `CNI_CONTAINERID` and `K8S_POD_INFRA_CONTAINER_ID`.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The pinned network namespace; on teardown it may already be gone.
    pub netns: PathBuf,
    pub port_mappings: Vec<PortMapping>,
    pub dns: Option<DnsConfig>,
    pub bandwidth: Option<Bandwidth>,
    /// Requested addresses (`ips` capability), e.g. `10.88.0.20/16`.
    pub ips: Vec<String>,
}

/// A hostPort mapping (the `portMappings` capability).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Empty for all host addresses.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// The `dns` capability: what the pod's resolv.conf will hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub searches: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// The `bandwidth` capability: rates in bits per second, bursts in bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    pub ingress_rate: u64,
    pub ingress_burst: u64,
    pub egress_rate: u64,
    pub egress_burst: u64,
}

impl PodNetwork {
    /// Checks the fields that end up in file names and in `CNI_ARGS`.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.len() > 200 {
            return Err(format!("pod id {:?} must be 1 to 200 bytes", self.id));
        }
        if !self
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!("pod id {:?} may only hold [A-Za-z0-9._-]", self.id));
        }
        for (what, v) in [
            ("namespace", &self.namespace),
            ("name", &self.name),
            ("uid", &self.uid),
        ] {
            if v.contains([';', '=', '\0']) {
                return Err(format!("pod {what} {v:?} contains ';', '=' or NUL"));
            }
        }
        for pm in &self.port_mappings {
            if !matches!(pm.protocol.as_str(), "tcp" | "udp" | "sctp") {
                return Err(format!(
                    "port mapping protocol {:?} is not tcp, udp or sctp",
                    pm.protocol
                ));
            }
            if pm.host_port == 0 || pm.container_port == 0 {
                return Err(format!(
                    "port mapping {}:{} has a zero port",
                    pm.host_port, pm.container_port
                ));
            }
        }
        Ok(())
    }

    /// `CNI_ARGS` as kubelet-era runtimes pass it.
    pub fn cni_args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            self.namespace, self.name, self.id, self.uid
        )
    }

    /// All capability arguments; each plugin later receives only those it declares.
    pub fn runtime_config(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if !self.port_mappings.is_empty() {
            m.insert("portMappings".into(), serde_json::json!(self.port_mappings));
        }
        if let Some(dns) = &self.dns {
            m.insert("dns".into(), serde_json::json!(dns));
        }
        if let Some(bw) = &self.bandwidth {
            m.insert("bandwidth".into(), serde_json::json!(bw));
        }
        if !self.ips.is_empty() {
            m.insert("ips".into(), serde_json::json!(self.ips));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_runtime_config() {
        let pod = PodNetwork {
            id: "abc".into(),
            namespace: "default".into(),
            name: "web".into(),
            uid: "u-1".into(),
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        assert_eq!(pod.validate(), Ok(()));
        assert_eq!(
            pod.cni_args(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1"
        );
        let rc = Value::Object(pod.runtime_config());
        assert_eq!(
            rc,
            serde_json::json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
        );
        let bad = PodNetwork {
            id: "a/b".into(),
            ..pod.clone()
        };
        assert!(bad.validate().is_err());
        let bad = PodNetwork {
            name: "x;y".into(),
            ..pod
        };
        assert!(bad.validate().is_err());
    }
}
