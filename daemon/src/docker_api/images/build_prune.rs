//! `POST /build/prune`: the build cache emptied, then the layers only it kept freed
//! (an image garbage collection). `all` is accepted (berth keeps one kind of cache
//! and every entry is unused outside a build); `keep-storage` and `filters` are
//! refused when set.

use std::collections::HashMap;
use std::sync::Arc;

use berth_build::executor::cache::Cache;
use serde_json::json;

use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    req.query_bool("all")?;
    if let Some(k) = req
        .query("keep-storage")
        .filter(|k| !k.is_empty() && *k != "0")
    {
        return Err(ApiError::BadRequest(format!(
            "keep-storage={k} is not supported by berth's build cache prune"
        )));
    }
    if let Some(f) = req
        .query("filters")
        .filter(|f| !f.is_empty() && *f != "{}" && *f != "null")
    {
        return Err(ApiError::BadRequest(format!(
            "filters {f} are not supported by berth's build cache prune"
        )));
    }
    let images = &daemon.engine.images;
    let sizes = |list: Vec<berth_snapshotter::BlobInfo>| -> HashMap<String, u64> {
        list.into_iter()
            .map(|b| (b.digest.to_string(), b.size))
            .collect()
    };
    let before = sizes(images.content.list().unwrap_or_default());
    let (keys, entry_bytes) = Cache::open(daemon.engine.root()).prune();
    let collected = images
        .gc()
        .await
        .map_err(|e| ApiError::Internal(format!("freeing the build cache's layers: {e}")))?;
    let freed: u64 = collected
        .blobs
        .iter()
        .filter_map(|d| before.get(&d.to_string()))
        .sum();
    Ok(Reply::json(&json!({
        "CachesDeleted": keys,
        "SpaceReclaimed": freed + entry_bytes,
    })))
}
