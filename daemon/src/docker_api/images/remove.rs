//! `DELETE /images/{name}` (untag, or delete the image with its last name) and
//! `POST /images/prune`.

use std::sync::Arc;

use berth_image::ImageRecord;
use berth_snapshotter::Digest;
use serde_json::{json, Value};

use super::super::{ApiError, ApiRequest, Reply};
use super::filters;
use super::resolve::{familiar, find, group, store_err};
use super::shape;
use crate::images::is_dangling;
use crate::store::Kind;
use crate::Daemon;

/// A container using image `id`: (short container id, running).
///
/// Container records (`engine::ContainerRecord`) keep the image ID in `image_id`.
pub fn user_of(daemon: &Daemon, id: &Digest) -> Result<Option<(String, bool)>, ApiError> {
    let containers = daemon.store.list::<Value>(Kind::Container)?;
    let id = id.to_string();
    Ok(containers
        .into_iter()
        .find(|(_, _, c)| c["image_id"].as_str() == Some(id.as_str()))
        .map(|(cid, _, c)| {
            let running = matches!(c["state"]["status"].as_str(), Some("running" | "paused"));
            (cid.chars().take(12).collect(), running)
        }))
}

fn short(id: &Digest) -> String {
    id.hex().chars().take(12).collect()
}

fn untagged(rec: &ImageRecord) -> Option<Value> {
    (!is_dangling(&rec.name)).then(|| json!({ "Untagged": familiar(&rec.name) }))
}

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest, name: &str) -> Result<Reply, ApiError> {
    let force = req.query_bool("force")?;
    let noprune = req.query_bool("noprune")?;
    let images = &daemon.images;
    let found = find(images, name)?;
    let live: Vec<&ImageRecord> = found
        .records
        .iter()
        .filter(|r| !is_dangling(&r.name))
        .collect();
    let mut out = Vec::new();
    match &found.by_name {
        Some(rec) if !is_dangling(&rec.name) && live.len() > 1 => {
            images.store.remove(&rec.name).map_err(store_err)?;
            out.extend(untagged(rec));
            return Ok(Reply::json(&Value::Array(out)));
        }
        Some(_) => {}
        None if live.len() > 1 && !force => {
            return Err(ApiError::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                short(&found.id)
            )));
        }
        None => {}
    }
    if let Some((cid, running)) = user_of(daemon, &found.id)? {
        if running || !force {
            let how = if running {
                "cannot be forced"
            } else {
                "must be forced"
            };
            let state = if running { "running" } else { "stopped" };
            return Err(ApiError::Conflict(format!(
                "conflict: unable to delete {} ({how}) - image is being used by {state} container {cid}",
                short(&found.id)
            )));
        }
    }
    for rec in &found.records {
        images.store.remove(&rec.name).map_err(store_err)?;
        out.extend(untagged(rec));
    }
    out.push(json!({ "Deleted": found.id.to_string() }));
    if !noprune {
        images.gc().await.map_err(store_err)?;
    }
    Ok(Reply::json(&Value::Array(out)))
}

/// `POST /images/prune`: dangling images (or, with `dangling=false`, every image no
/// container uses), filtered by `label`.
pub async fn prune(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["dangling", "label", "until"])?;
    let only_dangling = filters::boolean(&f, "dangling")?.unwrap_or(true);
    let until = match f.get("until").and_then(|v| v.last()) {
        Some(u) => Some(until_secs(u)?),
        None => None,
    };
    let images = &daemon.images;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for (id, records) in group(images.store.list().map_err(store_err)?) {
        let no_tag = records.iter().all(|r| is_dangling(&r.name));
        if only_dangling && !no_tag {
            continue;
        }
        let cfg = shape::config(&images.content, &id)?;
        if !filters::labels_match(&f, &shape::labels(&cfg)) {
            continue;
        }
        if until.is_some_and(|u| shape::created(&cfg, &records[0]) >= u) {
            continue;
        }
        if user_of(daemon, &id)?.is_some() {
            continue;
        }
        for rec in &records {
            images.store.remove(&rec.name).map_err(store_err)?;
            deleted.extend(untagged(rec));
        }
        reclaimed += records[0].size;
        deleted.push(json!({ "Deleted": id.to_string() }));
    }
    images.gc().await.map_err(store_err)?;
    Ok(Reply::json(&json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
        "SpaceReclaimed": reclaimed,
    })))
}

/// `until`: seconds since the epoch, an RFC 3339 time, or a duration ago (`24h`).
fn until_secs(v: &str) -> Result<i64, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn containers_using_an_image_are_found() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let daemon = Daemon::start(Config {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            ..Config::default()
        })?;
        let id = Digest::of(b"an image config");
        let other = Digest::of(b"another image config");
        assert_eq!(user_of(&daemon, &id)?, None);
        let cid = "c0ffee".repeat(10);
        daemon.store.put(
            Kind::Container,
            &cid,
            Some("web"),
            &json!({ "image_id": id.to_string(), "state": { "status": "exited" } }),
        )?;
        assert_eq!(user_of(&daemon, &id)?, Some((cid[..12].to_string(), false)));
        assert_eq!(user_of(&daemon, &other)?, None);
        Ok(())
    }
}
