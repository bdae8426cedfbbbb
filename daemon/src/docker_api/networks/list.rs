//! `GET /networks`: the networks the `dangling`, `driver`, `id`, `label`, `name`,
//! `scope` and `type` filters take.

use std::sync::Arc;

use berth_engine::networks::{self, NetworkFilter};
use serde_json::Value;

use super::super::images::filters::{self, Filters};
use super::super::{ApiError, ApiRequest, Reply};
use super::shape;
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(
        &f,
        &["dangling", "driver", "id", "label", "name", "scope", "type"],
    )?;
    let filter = NetworkFilter {
        dangling: filters::boolean(&f, "dangling")?,
        ..filter_of(&f)?
    };
    let engine = Arc::clone(&daemon.engine);
    let list = berth_engine::blocking(move || networks::list(&engine, &filter)).await?;
    let list: Vec<Value> = list.iter().map(|n| shape::network(n, false)).collect();
    Ok(Reply::json(&Value::Array(list)))
}

/// Every part of a filter but `dangling`; a `type` other than `custom`/`builtin` is
/// refused as dockerd refuses it.
pub fn filter_of(f: &Filters) -> Result<NetworkFilter, ApiError> {
    let values = |k: &str| f.get(k).cloned().unwrap_or_default();
    let types = values("type");
    if let Some(t) = types.iter().find(|t| *t != "custom" && *t != "builtin") {
        return Err(ApiError::BadRequest(format!(
            "invalid filter: 'type'='{t}'"
        )));
    }
    Ok(NetworkFilter {
        dangling: None,
        drivers: values("driver"),
        ids: values("id"),
        labels: values("label"),
        not_labels: values("label!"),
        names: values("name"),
        scopes: values("scope"),
        types,
        until: None,
    })
}
