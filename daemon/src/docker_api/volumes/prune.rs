//! `POST /volumes/prune`: the unused volumes, filtered by `label` and `label!`.
//! Which ones are dockerd's rule by API version: anonymous ones only from 1.42, with
//! the `all` filter for named ones too; every unused one before 1.42 (berth speaks at
//! most 1.41, so today every unused volume, as docker 20.10's `volume prune` says).

use std::sync::Arc;

use berth_engine::volumes::{self, PruneOptions};
use serde_json::{json, Value};

use super::super::images::filters;
use super::super::{ApiError, ApiRequest, Reply};
use super::list::labels_and_names;
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["label", "label!", "all"])?;
    let all = filters::boolean(&f, "all")?.unwrap_or(false) || req.version < (1, 42);
    let options = PruneOptions {
        all,
        filter: labels_and_names(&f),
    };
    let engine = Arc::clone(&daemon.engine);
    let pruned = berth_engine::blocking(move || volumes::prune(&engine, &options)).await?;
    Ok(Reply::json(&json!({
        "VolumesDeleted": if pruned.names.is_empty() { Value::Null } else { json!(pruned.names) },
        "SpaceReclaimed": pruned.bytes,
    })))
}
