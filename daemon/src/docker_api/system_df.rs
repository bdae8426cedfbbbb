//! `GET /system/df`: what images, containers, volumes and the build cache take on
//! disk, as dockerd answers it (the docker CLI's `system df [-v]` reads it). Sizes are
//! the bytes of the files: images' unpacked layers, containers' writable layers,
//! volumes' data directories. `BuildCache`: each build cache entry (see
//! [`build_cache`]).

use std::sync::Arc;

use serde_json::{json, Value};

use super::{containers, images, volumes, ApiError, Reply};
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>) -> Result<Reply, ApiError> {
    let d = Arc::clone(daemon);
    // Walking the layers and volumes is file system work: off the async threads.
    let body = tokio::task::spawn_blocking(move || usage(&d))
        .await
        .map_err(|e| ApiError::Internal(format!("system df: {e}")))??;
    Ok(Reply::json(&body))
}

fn usage(daemon: &Daemon) -> Result<Value, ApiError> {
    let engine = &daemon.engine;
    let records = berth_engine::list(engine)?;
    let images = images::df::usage(daemon, &records)?;
    let containers = containers::df_entries(engine, &records, &images.sizes);
    let volumes: Vec<Value> =
        berth_engine::volumes::list(engine, &berth_engine::volumes::VolumeFilter::default())?
            .iter()
            .map(|v| {
                let mut entry = volumes::shape(v);
                entry["UsageData"] = json!({
                    "Size": berth_engine::volumes::du(&v.mountpoint),
                    "RefCount": v.used_by.len(),
                });
                entry
            })
            .collect();
    Ok(json!({
        "LayersSize": images.layers_size,
        "Images": images.images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": build_cache(daemon),
    }))
}

/// The build cache's entries as dockerd lists its records. An entry's `Size` is the
/// bytes of its file plus the layers it lists that no image holds and that are still
/// stored (an image's removal collects its layers, cache or not), each layer counted
/// once (for the oldest entry listing it as its last layer, else the oldest listing
/// it): the sum is what `builder prune` frees (the entry files, then the layers only
/// the cache kept). `Shared` is false: what an image holds is not counted.
pub fn build_cache(daemon: &Daemon) -> Vec<Value> {
    use std::collections::{HashMap, HashSet};
    let images = &daemon.engine.images;
    let held: HashSet<String> = images
        .store
        .list()
        .unwrap_or_default()
        .iter()
        .flat_map(|r| r.layers.iter().map(|l| l.digest.to_string()))
        .collect();
    let listed = berth_build::executor::cache::Cache::open(daemon.engine.root()).list();
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (i, l) in listed.iter().enumerate() {
        if let Some(last) = l.entry.layers.last() {
            owner.entry(last.digest.to_string()).or_insert(i);
        }
    }
    for (i, l) in listed.iter().enumerate() {
        for d in &l.entry.layers {
            owner.entry(d.digest.to_string()).or_insert(i);
        }
    }
    let rfc3339 = |t: Option<std::time::SystemTime>| -> Value {
        t.map(|t| json!(humantime::format_rfc3339_nanos(t).to_string()))
            .unwrap_or(Value::Null)
    };
    listed
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut size = l.file_bytes;
            let mut seen = HashSet::new();
            for d in &l.entry.layers {
                let key = d.digest.to_string();
                if owner.get(&key) == Some(&i)
                    && !held.contains(&key)
                    && images.content.contains(&d.digest)
                    && seen.insert(key)
                {
                    size += d.size;
                }
            }
            let description = l
                .entry
                .image
                .history
                .last()
                .and_then(|h| h.created_by.clone())
                .unwrap_or_default();
            json!({
                "ID": &l.key[..l.key.len().min(25)],
                "Parent": "",
                "Type": "regular",
                "Description": description,
                "InUse": false,
                "Shared": false,
                "Size": size,
                "CreatedAt": rfc3339(l.created),
                "LastUsedAt": rfc3339(l.last_used),
                "UsageCount": 1,
            })
        })
        .collect()
}
