//! `POST /images/prune`: as Docker's `ImagesPrune`, the images without tags (known by
//! nothing or only by digest), or with `dangling=false` every image, each deleted
//! through its references (or its ID) without force, so that images containers use
//! stay; filtered by `label` and `until`. `SpaceReclaimed` is the unpacked size of the
//! layers deleted.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::super::{ApiError, ApiRequest, Reply};
use super::delete::image_delete;
use super::filters;
use super::resolve::{group, ref_kind, references, store_err, RefKind};
use super::shape;
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["dangling", "label", "until"])?;
    let only_dangling = filters::boolean(&f, "dangling")?.unwrap_or(true);
    let until = match f.get("until").and_then(|v| v.last()) {
        Some(u) => Some(until_secs(u)?),
        None => None,
    };
    let images = &daemon.engine.images;
    let all = group(images.store.list().map_err(store_err)?);
    // Each layer's unpacked size, to count what the deleted layers free.
    let mut layer_sizes: HashMap<String, u64> = HashMap::new();
    for rec in all.iter().flat_map(|(_, recs)| recs) {
        if let Some(sizes) = &rec.diff_sizes {
            let chains = berth_snapshotter::digest::chain_ids(&rec.diff_ids);
            for (chain, size) in chains.iter().zip(sizes) {
                layer_sizes.insert(chain.to_string(), *size);
            }
        }
    }
    let mut deleted = Vec::new();
    for (id, records) in all {
        let cfg = shape::config(&images.content, &id)?;
        if !filters::labels_match(&f, &shape::labels(&cfg)) {
            continue;
        }
        if until.is_some_and(|u| shape::created(&cfg, &records[0]) > u) {
            continue;
        }
        let refs = references(&records);
        let names: Vec<String> = if refs.is_empty() {
            vec![id.to_string()]
        } else if !only_dangling || refs.iter().all(|r| ref_kind(&r.name) != RefKind::Tag) {
            refs.iter().map(|r| r.name.clone()).collect()
        } else {
            continue;
        };
        for name in names {
            match image_delete(daemon, &name, false).await {
                Ok(items) => deleted.extend(items),
                // In use (a conflict), or already gone with an earlier reference.
                Err(ApiError::Conflict(_) | ApiError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(image = %name, error = %e, "prune: cannot delete the image");
                }
            }
        }
    }
    let reclaimed: u64 = deleted
        .iter()
        .filter_map(|d| d["Deleted"].as_str())
        .filter_map(|d| layer_sizes.get(d))
        .sum();
    Ok(Reply::json(&json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
        "SpaceReclaimed": reclaimed,
    })))
}

/// `until`: seconds since the epoch, an RFC 3339 time, or a duration ago (`24h`).
pub fn until_secs(v: &str) -> Result<i64, ApiError> {
    if let Ok(n) = v.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Ok(shape::now() - d.as_secs() as i64);
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid filter 'until={v}'")))
}
