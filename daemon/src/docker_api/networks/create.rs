//! `POST /networks/create`: `Name`, `Driver` (bridge only), `IPAM.Config` (at most one
//! IPv4 and one IPv6 `Subnet`, each with `Gateway` and `IPRange`), `Internal`,
//! `Attachable`, `EnableIPv6` (an IPv6 subnet required, as dockerd 20.10's IPv4-only
//! default pools require it), `Options`
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
    #[serde(default, deserialize_with = "null_is_zero")]
    name: String,
    #[serde(default)]
    check_duplicate: Option<bool>,
    #[serde(default, deserialize_with = "null_is_zero")]
    driver: String,
    #[serde(default, deserialize_with = "null_is_zero")]
    scope: String,
    #[serde(default, rename = "EnableIPv6", deserialize_with = "null_is_zero")]
    enable_ipv6: bool,
    #[serde(default, rename = "IPAM")]
    ipam: Option<Ipam>,
    #[serde(default, deserialize_with = "null_is_zero")]
    internal: bool,
    #[serde(default, deserialize_with = "null_is_zero")]
    attachable: bool,
    #[serde(default, deserialize_with = "null_is_zero")]
    ingress: bool,
    #[serde(default, deserialize_with = "null_is_zero")]
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
    #[serde(default, deserialize_with = "null_is_zero")]
    driver: String,
    #[serde(default)]
    config: Option<Vec<IpamConfig>>,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfig {
    #[serde(default, deserialize_with = "null_is_zero")]
    subnet: String,
    #[serde(default, rename = "IPRange", deserialize_with = "null_is_zero")]
    ip_range: String,
    #[serde(default, deserialize_with = "null_is_zero")]
    gateway: String,
    #[serde(default)]
    auxiliary_addresses: Option<BTreeMap<String, String>>,
}

/// A field the client sent as `null` reads as its zero value, as Go's JSON decoder
/// (dockerd's) reads it: docker-py sends `IPRange`, `Gateway` and such as `null`
/// when not given.
fn null_is_zero<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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
    // One IPv4 and one IPv6 config; an IPv6 one is told by its subnet (or, without
    // one, by its gateway or range).
    let is_v6 = |c: &IpamConfig| {
        [&c.subnet, &c.gateway, &c.ip_range]
            .iter()
            .find(|s| !s.is_empty())
            .is_some_and(|s| s.contains(':'))
    };
    let (v6, v4): (Vec<IpamConfig>, Vec<IpamConfig>) = configs.into_iter().partition(is_v6);
    if v4.len() > 1 || v6.len() > 1 {
        return Err(ApiError::BadRequest(
            "more than one IPv4 or more than one IPv6 IPAM config (subnet) per network is not supported by berth yet".into(),
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
    let set = |s: String| (!s.is_empty()).then_some(s);
    for c in v4.iter().chain(&v6) {
        if c.auxiliary_addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
        {
            return Err(ApiError::BadRequest(
                "IPAM AuxiliaryAddresses (--aux-address) are not supported by berth yet".into(),
            ));
        }
    }
    if let Some(c) = v4.into_iter().next() {
        new.subnet = set(c.subnet);
        new.gateway = set(c.gateway);
        new.ip_range = set(c.ip_range);
    }
    if let Some(c) = v6.into_iter().next() {
        new.subnet6 = set(c.subnet);
        new.gateway6 = set(c.gateway);
        new.ip_range6 = set(c.ip_range);
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
    fn python_sdk_body_with_nulls_translates() {
        // What docker-py 7's `networks.create("n", ipam=IPAMConfig(pool_configs=
        // [IPAMPool(subnet=…)]))` sends: the pool's unset fields as null.
        let new = to_new(body(json!({
            "Name": "n", "Driver": null, "Options": null, "CheckDuplicate": null,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/16",
                "IPRange": null, "Gateway": null, "AuxiliaryAddresses": null}]},
        })))
        .unwrap();
        assert_eq!(new.subnet.as_deref(), Some("10.9.0.0/16"));
        assert_eq!(new.gateway, None);
        assert_eq!(new.ip_range, None);
        assert_eq!(new.driver, "");
        let new = to_new(body(json!({"Name": "n", "IPAM": null, "Internal": null}))).unwrap();
        assert!(!new.internal && new.subnet.is_none());
    }

    #[test]
    fn ipv6_config_goes_beside_the_ipv4_one() {
        // docker 20.10's `network create --ipv6 --subnet fd00:db8:1::/64 --gateway
        // fd00:db8:1::1 --subnet 10.9.0.0/24 n` (the CLI pairs gateways by family).
        let new = to_new(body(json!({
            "Name": "n", "EnableIPv6": true,
            "IPAM": {"Driver": "default", "Config": [
                {"Subnet": "fd00:db8:1::/64", "Gateway": "fd00:db8:1::1"},
                {"Subnet": "10.9.0.0/24"}]},
        })))
        .unwrap();
        assert!(new.enable_ipv6);
        assert_eq!(new.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(new.subnet6.as_deref(), Some("fd00:db8:1::/64"));
        assert_eq!(new.gateway6.as_deref(), Some("fd00:db8:1::1"));
        assert_eq!(new.gateway, None);
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
                "more than one IPv4",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16", "AuxiliaryAddresses": {"a": "10.1.0.5"}}]}}),
                "AuxiliaryAddresses",
            ),
            (json!({"Name": ""}), "name is required"),
            (json!({"Name": null}), "name is required"),
        ] {
            let e = to_new(body(v)).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should name {want:?}");
        }
    }
}
