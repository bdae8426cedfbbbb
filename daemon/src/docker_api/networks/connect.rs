//! `POST /networks/{id}/connect`: `{"Container", "EndpointConfig": {"IPAMConfig":
//! {"IPv4Address", "IPv6Address"}, "Aliases"}}`; other endpoint settings refused by name when set.

use std::sync::Arc;

use berth_engine::networks::connect::{self, Connect};
use hyper::StatusCode;
use serde_json::Value;

use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

/// Whether a JSON value is its type's empty value (what clients send for unset).
pub fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_unset),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

pub async fn handle(
    daemon: &Arc<Daemon>,
    req: &mut ApiRequest,
    network: String,
) -> Result<Reply, ApiError> {
    let body: Value = req.json().await?;
    let container = super::container_of(&body)?;
    let ep = &body["EndpointConfig"];
    let mut ip = String::new();
    let mut ip6 = String::new();
    let mut aliases = Vec::new();
    if let Some(fields) = ep.as_object() {
        for (k, v) in fields {
            match k.as_str() {
                "IPAMConfig" => {
                    for (ik, iv) in v.as_object().into_iter().flatten() {
                        if ik == "IPv4Address" {
                            ip = iv.as_str().unwrap_or_default().to_string();
                        } else if ik == "IPv6Address" {
                            ip6 = iv.as_str().unwrap_or_default().to_string();
                        } else if !is_unset(iv) {
                            return Err(ApiError::BadRequest(format!(
                                "EndpointConfig.IPAMConfig.{ik} is not supported by berth"
                            )));
                        }
                    }
                }
                "Aliases" => {
                    aliases = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect()
                }
                // Filled by the daemon in inspect, ignored by dockerd on connect.
                "NetworkID"
                | "EndpointID"
                | "Gateway"
                | "IPAddress"
                | "IPPrefixLen"
                | "IPv6Gateway"
                | "GlobalIPv6Address"
                | "GlobalIPv6PrefixLen" => {}
                other if !is_unset(v) => {
                    return Err(ApiError::BadRequest(format!(
                        "EndpointConfig.{other} is not supported by berth"
                    )))
                }
                _ => {}
            }
        }
    }
    connect::connect(
        &daemon.engine,
        Connect {
            container,
            network,
            ip,
            ip6,
            aliases,
        },
    )
    .await?;
    Ok(Reply::empty(StatusCode::OK))
}
