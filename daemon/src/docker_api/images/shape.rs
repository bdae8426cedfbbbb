//! Image records in the shapes of Docker's API: list entries, inspect documents,
//! history rows.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_image::ImageRecord;
use berth_snapshotter::{ContentStore, Digest};
use serde_json::{json, Value};

use super::super::ApiError;
use super::resolve::repo_tags_digests;

/// The image config blob as JSON.
pub fn config(content: &ContentStore, id: &Digest) -> Result<Value, ApiError> {
    let err = |e: String| ApiError::Internal(format!("reading image config {id}: {e}"));
    let file = content.read(id).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    (&file)
        .take(berth_image::pull::MAX_CONFIG_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))
}

/// Seconds since the epoch of an RFC 3339 time, if it parses.
fn unix(rfc3339: Option<&str>) -> Option<i64> {
    let t =
        humantime::parse_rfc3339_weak(rfc3339?.trim_end_matches('Z').split('.').next()?).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

fn rfc3339(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// When the image was created: the config's `created`, else when berth stored it.
pub fn created(cfg: &Value, rec: &ImageRecord) -> i64 {
    unix(cfg["created"].as_str()).unwrap_or(rec.created as i64)
}

/// The image's labels: an object, or `null` when it has none (as Docker answers).
pub fn labels(cfg: &Value) -> Value {
    match &cfg["config"]["Labels"] {
        Value::Object(m) => Value::Object(m.clone()),
        _ => Value::Null,
    }
}

/// The image's size as Docker reports it: the unpacked size of its layers. A record
/// whose layers could not be measured (written by an older berth, its snapshots gone)
/// has only its compressed size.
pub fn size(rec: &ImageRecord) -> u64 {
    rec.unpacked_size().unwrap_or(rec.size)
}

/// A `GET /images/json` entry with the references to list.
pub fn list_entry(
    id: &Digest,
    tags: Vec<String>,
    digests: Vec<String>,
    rec: &ImageRecord,
    cfg: &Value,
) -> Value {
    // Docker 20.10 answers `null` for a list left empty (inspect answers `[]`).
    let list = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
    json!({
        "Id": id.to_string(),
        "ParentId": "",
        "RepoTags": list(tags),
        "RepoDigests": list(digests),
        "Created": created(cfg, rec),
        "Size": size(rec),
        "VirtualSize": size(rec),
        "SharedSize": -1,
        "Labels": labels(cfg),
        "Containers": -1,
    })
}

/// A `GET /images/{name}/json` document.
pub fn inspect(id: &Digest, records: &[ImageRecord], cfg: &Value) -> Value {
    let (tags, digests) = repo_tags_digests(records);
    let rec = &records[0];
    let created = match cfg["created"].as_str() {
        Some(c) => c.to_string(),
        None => rfc3339(rec.created as i64),
    };
    let container_config = match &cfg["config"] {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    json!({
        "Id": id.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": cfg["comment"].as_str().unwrap_or(""),
        "Created": created,
        "Container": "",
        "ContainerConfig": {},
        "DockerVersion": cfg["docker_version"].as_str().unwrap_or(""),
        "Author": cfg["author"].as_str().unwrap_or(""),
        "Config": container_config,
        "Architecture": cfg["architecture"].as_str().unwrap_or(""),
        "Variant": cfg["variant"],
        "Os": cfg["os"].as_str().unwrap_or(""),
        "Size": size(rec),
        "VirtualSize": size(rec),
        "GraphDriver": {
            "Name": "overlayfs",
            "Data": rec.chain_id.as_ref().map(|c| json!({"ChainID": c.to_string()})),
        },
        "RootFS": {
            "Type": "layers",
            "Layers": rec.diff_ids.iter().map(Digest::to_string).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    })
}

/// `GET /images/{name}/history`: newest first; layers with content carry their
/// unpacked size (as Docker's), the newest row carries the image ID and tags.
pub fn history(id: &Digest, records: &[ImageRecord], cfg: &Value) -> Value {
    let (tags, _) = repo_tags_digests(records);
    let rec = &records[0];
    let sizes: Vec<u64> = match &rec.diff_sizes {
        Some(sizes) => sizes.clone(),
        None => rec.layers.iter().map(|l| l.size).collect(),
    };
    let mut layers = sizes.iter().copied();
    let mut rows = Vec::new();
    let entries = cfg["history"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        for size in sizes.iter() {
            rows.push(json!({
                "Id": "<missing>", "Created": created(cfg, rec), "CreatedBy": "",
                "Tags": Value::Null, "Size": size, "Comment": "",
            }));
        }
    }
    for h in &entries {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty { 0 } else { layers.next().unwrap_or(0) };
        rows.push(json!({
            "Id": "<missing>",
            "Created": unix(h["created"].as_str()).unwrap_or_else(|| created(cfg, rec)),
            "CreatedBy": h["created_by"].as_str().unwrap_or(""),
            "Tags": Value::Null,
            "Size": size,
            "Comment": h["comment"].as_str().unwrap_or(""),
        }));
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top["Id"] = json!(id.to_string());
        // Docker's rows carry `null`, not `[]`, for an image without tags.
        top["Tags"] = if tags.is_empty() {
            Value::Null
        } else {
            json!(tags)
        };
    }
    Value::Array(rows)
}

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(unix(Some("1970-01-01T00:01:00Z")), Some(60));
        assert_eq!(
            unix(Some("2024-01-02T03:04:05.123456789Z")),
            Some(1704164645)
        );
        assert_eq!(rfc3339(60), "1970-01-01T00:01:00Z");
        assert_eq!(unix(Some("garbage")), None);
    }
}
