//! `POST /networks/create`: `Name`, `Driver` (bridge only), `IPAM.Config` (one IPv4
//! `Subnet` with `Gateway` and `IPRange`), `Internal`, `Attachable`, `EnableIPv6`
//! (refused until IPv6 subnets are handled), `Options`
//! (`com.docker.network.bridge.name`), `Labels`, `CheckDuplicate` (names are always
//! unique in berth); swarm's `Ingress`, `ConfigOnly`, `ConfigFrom`, a `Scope` other
//! than local, other IPAM drivers, IPAM options and auxiliary addresses are refused by
//! name. 201 with `{"Id", "Warning"}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_engine::networks::{self, NewNetwork};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    check_duplicate: Option<bool>,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    scope: String,
    #[serde(default, rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(default, rename = "IPAM")]
    ipam: Option<Ipam>,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    attachable: bool,
    #[serde(default)]
    ingress: bool,
    #[serde(default)]
    config_only: bool,
    #[serde(default)]
    config_from: Option<Value>,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ipam {
    #[serde(default)]
    driver: String,
    #[serde(default)]
    config: Option<Vec<IpamConfig>>,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfig {
    #[serde(default)]
    subnet: String,
    #[serde(default, rename = "IPRange")]
    ip_range: String,
    #[serde(default)]
    gateway: String,
    #[serde(default)]
    auxiliary_addresses: Option<BTreeMap<String, String>>,
}

pub async fn handle(daemon: &Arc<Daemon>, req: &mut ApiRequest) -> Result<Reply, ApiError> {
    let body: CreateBody = req.json().await?;
    let new = to_new(body)?;
    let engine = Arc::clone(&daemon.engine);
    let network = berth_engine::blocking(move || networks::create(&engine, new)).await?;
    Ok(
        Reply::json(&json!({"Id": network.record.id, "Warning": ""}))
            .with_status(StatusCode::CREATED),
    )
}

fn to_new(body: CreateBody) -> Result<NewNetwork, ApiError> {
    let refuse = |what: &str| {
        Err(ApiError::BadRequest(format!(
            "{what} is not supported by berth (no swarm, bridge networks only)"
        )))
    };
    if body.name.is_empty() {
        return Err(ApiError::BadRequest(
            "network name is required (Name)".into(),
        ));
    }
    if body.ingress {
        return refuse("Ingress");
    }
    if body.config_only {
        return refuse("ConfigOnly");
    }
    if body
        .config_from
        .as_ref()
        .is_some_and(|v| !v.is_null() && v.get("Network").and_then(Value::as_str) != Some(""))
    {
        return refuse("ConfigFrom");
    }
    if !matches!(body.scope.as_str(), "" | "local") {
        return refuse(&format!("Scope {:?}", body.scope));
    }
    // berth never makes two networks of one name, as if CheckDuplicate were always on.
    let _ = body.check_duplicate;
    let ipam = body.ipam.unwrap_or_default();
    if !matches!(ipam.driver.as_str(), "" | "default") {
        return Err(ApiError::BadRequest(format!(
            "IPAM driver {:?} is not supported by berth (only default)",
            ipam.driver
        )));
    }
    if let Some(key) = ipam.options.unwrap_or_default().keys().next() {
        return Err(ApiError::BadRequest(format!(
            "IPAM option {key:?} is not supported by berth"
        )));
    }
    let configs = ipam.config.unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::BadRequest(
            "more than one IPAM config (subnet) per network is not supported by berth yet".into(),
        ));
    }
    let mut new = NewNetwork {
        name: body.name,
        driver: body.driver,
        internal: body.internal,
        enable_ipv6: body.enable_ipv6,
        attachable: body.attachable,
        labels: body.labels.unwrap_or_default(),
        options: body.options.unwrap_or_default(),
        ..Default::default()
    };
    if let Some(c) = configs.into_iter().next() {
        if c.auxiliary_addresses.is_some_and(|a| !a.is_empty()) {
            return Err(ApiError::BadRequest(
                "IPAM AuxiliaryAddresses (--aux-address) are not supported by berth yet".into(),
            ));
        }
        let set = |s: String| (!s.is_empty()).then_some(s);
        new.subnet = set(c.subnet);
        new.gateway = set(c.gateway);
        new.ip_range = set(c.ip_range);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CreateBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn docker_cli_body_translates() {
        // What docker 20.10's `network create --subnet … --gateway … --ip-range …
        // --internal --label a=b -o com.docker.network.bridge.name=x n` sends.
        let new = to_new(body(json!({
            "Name": "n", "CheckDuplicate": true, "Driver": "bridge", "Scope": "",
            "EnableIPv6": false, "Internal": true, "Attachable": false, "Ingress": false,
            "ConfigOnly": false, "ConfigFrom": null,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [
                {"Subnet": "10.9.0.0/16", "IPRange": "10.9.1.0/24", "Gateway": "10.9.0.9"}]},
            "Options": {"com.docker.network.bridge.name": "x"}, "Labels": {"a": "b"},
        })))
        .unwrap();
        assert_eq!(new.name, "n");
        assert_eq!(new.subnet.as_deref(), Some("10.9.0.0/16"));
        assert_eq!(new.gateway.as_deref(), Some("10.9.0.9"));
        assert_eq!(new.ip_range.as_deref(), Some("10.9.1.0/24"));
        assert!(new.internal);
        assert_eq!(new.labels["a"], "b");
        assert_eq!(new.options["com.docker.network.bridge.name"], "x");
    }

    #[test]
    fn swarm_and_unknown_ipam_refused_by_name() {
        for (v, want) in [
            (json!({"Name": "n", "Ingress": true}), "Ingress"),
            (json!({"Name": "n", "ConfigOnly": true}), "ConfigOnly"),
            (json!({"Name": "n", "Scope": "swarm"}), "Scope"),
            (
                json!({"Name": "n", "IPAM": {"Driver": "dhcp"}}),
                "IPAM driver",
            ),
            (
                json!({"Name": "n", "IPAM": {"Options": {"x": "y"}}}),
                "IPAM option",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16"}, {"Subnet": "10.2.0.0/16"}]}}),
                "more than one IPAM config",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16", "AuxiliaryAddresses": {"a": "10.1.0.5"}}]}}),
                "AuxiliaryAddresses",
            ),
            (json!({"Name": ""}), "name is required"),
        ] {
            let e = to_new(body(v)).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should name {want:?}");
        }
    }
}
