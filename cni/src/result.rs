//! CNI results: the 1.0 shape, converted from 0.1/0.2 (`ip4`/`ip6`) and 0.3/0.4 results.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("plugin result ({version}) is malformed: {msg}")]
pub struct ResultError {
    pub version: String,
    pub msg: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The netns path for interfaces inside the pod; empty for host-side ones.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// CIDR notation, e.g. `10.88.0.5/16`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into [`CniResult::interfaces`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A plugin chain's result, normalised to the CNI 1.0 layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The version the plugin answered with.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

impl CniResult {
    /// Parses a result of any supported version.
    pub fn from_value(v: &Value) -> Result<CniResult, ResultError> {
        let version = v
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.1.0")
            .to_string();
        let bad = |msg: String| ResultError {
            version: version.clone(),
            msg,
        };
        let mut r = if version.starts_with("0.1.") || version.starts_with("0.2.") {
            from_legacy(v).map_err(bad)?
        } else {
            // 0.3.x and 0.4.0 add an `ips[].version` field that 1.0 dropped; serde ignores it.
            serde_json::from_value::<CniResult>(v.clone()).map_err(|e| bad(e.to_string()))?
        };
        r.cni_version = version.clone();
        for ip in &r.ips {
            if ip.ip().is_none() {
                return Err(bad(format!("bad address {:?}", ip.address)));
            }
            if let Some(i) = ip.interface {
                if i >= r.interfaces.len() {
                    return Err(bad(format!(
                        "ip {} names interface {i}, which does not exist",
                        ip.address
                    )));
                }
            }
        }
        Ok(r)
    }

    /// The pod's addresses (those on sandbox interfaces, or all when the plugin did not
    /// say), IPv4 first.
    pub fn pod_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|ip| match ip.interface {
                Some(i) => self
                    .interfaces
                    .get(i)
                    .is_some_and(|it| !it.sandbox.is_empty()),
                None => true,
            })
            .filter_map(IpConfig::ip)
            .collect();
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips.dedup();
        ips
    }
}

/// 0.1.0/0.2.0: `{"ip4": {"ip": cidr, "gateway", "routes"}, "ip6": {...}, "dns"}`.
fn from_legacy(v: &Value) -> Result<CniResult, String> {
    let mut r = CniResult::default();
    for key in ["ip4", "ip6"] {
        let Some(block) = v.get(key) else { continue };
        let address = block
            .get("ip")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{key}.ip is missing"))?
            .to_string();
        let gateway = block
            .get("gateway")
            .and_then(Value::as_str)
            .map(str::to_string);
        r.ips.push(IpConfig {
            address,
            gateway,
            interface: None,
        });
        if let Some(routes) = block.get("routes") {
            let routes: Vec<Route> =
                serde_json::from_value(routes.clone()).map_err(|e| format!("{key}.routes: {e}"))?;
            r.routes.extend(routes);
        }
    }
    if let Some(dns) = v.get("dns") {
        r.dns = serde_json::from_value(dns.clone()).map_err(|e| format!("dns: {e}"))?;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_0_2_and_0_4_and_1_0() -> anyhow::Result<()> {
        let v02 = serde_json::json!({"cniVersion":"0.2.0",
            "ip4":{"ip":"10.1.0.2/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},
            "ip6":{"ip":"fd00::2/64"},"dns":{"nameservers":["10.1.0.1"]}});
        let r = CniResult::from_value(&v02)?;
        let want: Vec<IpAddr> = vec!["10.1.0.2".parse()?, "fd00::2".parse()?];
        assert_eq!(r.pod_ips(), want);
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.dns.nameservers, vec!["10.1.0.1".to_string()]);

        // 0.4.0: the host-side bridge address is not a pod IP; IPv6 sorts after IPv4.
        let v04 = serde_json::json!({"cniVersion":"0.4.0",
            "interfaces":[{"name":"cni0","mac":"aa"},{"name":"eth0","sandbox":"/run/x"}],
            "ips":[{"version":"6","address":"fd00::9/64","interface":1},
                   {"version":"4","address":"10.2.0.9/16","gateway":"10.2.0.1","interface":1},
                   {"version":"4","address":"10.2.0.1/16","interface":0}]});
        let r = CniResult::from_value(&v04)?;
        let want: Vec<IpAddr> = vec!["10.2.0.9".parse()?, "fd00::9".parse()?];
        assert_eq!(r.pod_ips(), want);
        assert_eq!(r.cni_version, "0.4.0");

        let bad = serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"nope"}]});
        assert!(CniResult::from_value(&bad).is_err());
        let bad_if = serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","interface":3}]});
        assert!(CniResult::from_value(&bad_if).is_err());
        Ok(())
    }
}
