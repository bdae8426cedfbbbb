//! The images part of `GET /system/df`: each image as the list shows it, with the
//! size of its layers other images share (`SharedSize`) and the number of containers
//! made from it (`Containers`); and the unpacked size of every layer once
//! (`LayersSize`).

use std::collections::HashMap;

use berth_engine::ContainerRecord;
use serde_json::{json, Value};

use super::resolve::{group, references, store_err, tags_digests};
use super::shape;
use crate::docker_api::ApiError;
use crate::Daemon;

/// What the images take on disk.
pub struct ImagesUsage {
    pub images: Vec<Value>,
    /// Each layer once.
    pub layers_size: u64,
    /// Image ID → its size, for the containers' `SizeRootFs`.
    pub sizes: HashMap<String, u64>,
}

pub fn usage(daemon: &Daemon, containers: &[ContainerRecord]) -> Result<ImagesUsage, ApiError> {
    let images = &daemon.engine.images;
    let all = group(images.store.list().map_err(store_err)?);
    // Layer (chain ID) → (size, images using it).
    let mut layers: HashMap<String, (u64, usize)> = HashMap::new();
    let layers_of = |rec: &berth_image::store::ImageRecord| -> Vec<(String, u64)> {
        let chains = berth_snapshotter::digest::chain_ids(&rec.diff_ids);
        match &rec.diff_sizes {
            Some(sizes) => chains
                .iter()
                .zip(sizes)
                .map(|(c, s)| (c.to_string(), *s))
                .collect(),
            None => Vec::new(),
        }
    };
    for (_, records) in &all {
        for (chain, size) in layers_of(&records[0]) {
            layers.entry(chain).or_insert((size, 0)).1 += 1;
        }
    }
    let mut out = Vec::new();
    let mut sizes = HashMap::new();
    for (id, records) in &all {
        let rec = &records[0];
        let cfg = shape::config(&images.content, id)?;
        let (mut tags, mut digests) = tags_digests(references(records));
        if tags.is_empty() && digests.is_empty() {
            tags = vec!["<none>:<none>".to_string()];
            digests = vec!["<none>@<none>".to_string()];
        }
        let shared: u64 = layers_of(rec)
            .iter()
            .filter(|(c, _)| layers.get(c).is_some_and(|(_, n)| *n > 1))
            .map(|(_, s)| s)
            .sum();
        let id_s = id.to_string();
        let used = containers.iter().filter(|c| c.image_id == id_s).count();
        let mut entry = shape::list_entry(id, tags, digests, rec, &cfg);
        entry["SharedSize"] = json!(shared);
        entry["Containers"] = json!(used);
        sizes.insert(id_s, shape::size(rec));
        out.push(entry);
    }
    out.sort_by_key(|e| std::cmp::Reverse(e["Created"].as_i64().unwrap_or(0)));
    Ok(ImagesUsage {
        images: out,
        layers_size: layers.values().map(|(s, _)| s).sum(),
        sizes,
    })
}
