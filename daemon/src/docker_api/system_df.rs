//! `GET /system/df`: what images, containers, volumes and the build cache take on
//! disk, as dockerd answers it (the docker CLI's `system df [-v]` reads it). Sizes are
//! the bytes of the files: images' unpacked layers, containers' writable layers,
//! volumes' data directories. berth has no build cache yet: `BuildCache` is empty.

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
        "BuildCache": [],
    }))
}
