//! A network as Docker's API shows it (`NetworkResource` in its swagger).

use berth_engine::networks::{Network, BRIDGE_DRIVER, OPT_BRIDGE_NAME};
use serde_json::{json, Map, Value};

/// With `containers`, the attached containers (inspect); a list shows none, as
/// dockerd's does.
pub fn network(n: &Network, containers: bool) -> Value {
    let r = &n.record;
    let mut ipam_config = Vec::new();
    if !r.subnet.is_empty() {
        let mut c = Map::new();
        c.insert("Subnet".into(), json!(r.subnet));
        if let Some(range) = &r.ip_range {
            c.insert("IPRange".into(), json!(range));
        }
        c.insert("Gateway".into(), json!(r.gateway));
        ipam_config.push(Value::Object(c));
    }
    if !r.subnet6.is_empty() {
        let mut c = Map::new();
        c.insert("Subnet".into(), json!(r.subnet6));
        if let Some(range) = &r.ip_range6 {
            c.insert("IPRange".into(), json!(range));
        }
        c.insert("Gateway".into(), json!(r.gateway6));
        ipam_config.push(Value::Object(c));
    }
    let mut options = r.options.clone();
    if r.driver == BRIDGE_DRIVER && r.builtin {
        options.insert(OPT_BRIDGE_NAME.into(), r.bridge.clone());
        options.insert(
            "com.docker.network.bridge.default_bridge".into(),
            "true".into(),
        );
    }
    let attached: Map<String, Value> = if containers {
        n.containers
            .iter()
            .map(|c| {
                let e = &c.endpoint;
                let ip = if e.ip_address.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", e.ip_address, e.prefix_len)
                };
                let ip6 = if e.ip6_address.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", e.ip6_address, e.prefix6_len)
                };
                (
                    c.id.clone(),
                    json!({
                        "Name": c.name,
                        "EndpointID": e.id_for(&c.id),
                        "MacAddress": e.mac_address,
                        "IPv4Address": ip,
                        "IPv6Address": ip6,
                    }),
                )
            })
            .collect()
    } else {
        Map::new()
    };
    json!({
        "Name": r.name,
        "Id": r.id,
        "Created": r.created,
        "Scope": "local",
        "Driver": r.driver,
        "EnableIPv6": r.enable_ipv6,
        "IPAM": {
            "Driver": "default",
            "Options": if r.builtin { Value::Null } else { json!({}) },
            "Config": ipam_config,
        },
        "Internal": r.internal,
        "Attachable": r.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": attached,
        "Options": options,
        "Labels": r.labels,
    })
}
