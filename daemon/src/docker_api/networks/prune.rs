//! `POST /networks/prune`: the user networks no container uses, filtered by `label`,
//! `label!` and `until` (refused: berth does not filter by age yet).

use std::sync::Arc;

use berth_engine::networks::{self, NetworkFilter};
use serde_json::{json, Value};

use super::super::images::filters;
use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    if f.contains_key("until") {
        return Err(ApiError::BadRequest(
            "the until filter of network prune is not supported by berth yet".into(),
        ));
    }
    filters::only(&f, &["label", "label!"])?;
    let values = |k: &str| f.get(k).cloned().unwrap_or_default();
    let filter = NetworkFilter {
        labels: values("label"),
        not_labels: values("label!"),
        ..Default::default()
    };
    let engine = Arc::clone(&daemon.engine);
    let pruned = berth_engine::blocking(move || networks::prune(&engine, &filter)).await?;
    Ok(Reply::json(&json!({
        "NetworksDeleted": if pruned.is_empty() { Value::Null } else { json!(pruned) },
    })))
}
