//! `POST /networks/prune`: the user networks no container uses, filtered by `label`,
//! `label!` and `until` (created before: a timestamp or a duration back from now).

use std::sync::Arc;

use berth_engine::networks::{self, NetworkFilter};
use serde_json::{json, Value};

use super::super::images::filters;
use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["label", "label!", "until"])?;
    let until = match f.get("until").and_then(|v| v.last()) {
        Some(u) => Some(super::super::images::prune::until_secs(u)?),
        None => None,
    };
    let values = |k: &str| f.get(k).cloned().unwrap_or_default();
    let filter = NetworkFilter {
        labels: values("label"),
        not_labels: values("label!"),
        until,
        ..Default::default()
    };
    let engine = Arc::clone(&daemon.engine);
    let pruned = berth_engine::blocking(move || networks::prune(&engine, &filter)).await?;
    Ok(Reply::json(&json!({
        "NetworksDeleted": if pruned.is_empty() { Value::Null } else { json!(pruned) },
    })))
}
