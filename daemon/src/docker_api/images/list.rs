//! `GET /images/json`: one entry per image ID, with `filters` (`dangling`, `label`,
//! `reference`, `before`, `since`).

use std::sync::Arc;

use serde_json::Value;

use super::super::{ApiError, ApiRequest, Reply};
use super::filters;
use super::resolve::{familiar, find, group, store_err};
use super::shape;
use crate::Daemon;

pub fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["dangling", "label", "reference", "before", "since"])?;
    let dangling = filters::boolean(&f, "dangling")?;
    let images = &daemon.images;
    let time_of = |name: &str| -> Result<i64, ApiError> {
        let found = find(images, name)?;
        let cfg = shape::config(&images.content, &found.id)?;
        Ok(shape::created(&cfg, &found.records[0]))
    };
    let before = f
        .get("before")
        .and_then(|v| v.last())
        .map(|n| time_of(n))
        .transpose()?;
    let since = f
        .get("since")
        .and_then(|v| v.last())
        .map(|n| time_of(n))
        .transpose()?;
    let mut out = Vec::new();
    for (id, records) in group(images.store.list().map_err(store_err)?) {
        let cfg = shape::config(&images.content, &id)?;
        let entry = shape::list_entry(&id, &records, &cfg);
        // Dangling: no name at all (an image pulled by digest has one).
        let untagged = entry["RepoTags"].as_array().is_none_or(Vec::is_empty)
            && entry["RepoDigests"].as_array().is_none_or(Vec::is_empty);
        if dangling.is_some_and(|d| d != untagged) {
            continue;
        }
        if !filters::labels_match(&f, &entry["Labels"]) {
            continue;
        }
        if let Some(patterns) = f.get("reference") {
            let names: Vec<String> = records.iter().map(|r| familiar(&r.name)).collect();
            let hit = patterns.iter().any(|p| {
                names.iter().any(|n| {
                    filters::glob(p, n)
                        || n.rsplit_once(':')
                            .is_some_and(|(repo, _)| filters::glob(p, repo))
                })
            });
            if !hit {
                continue;
            }
        }
        let created = entry["Created"].as_i64().unwrap_or(0);
        if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
            continue;
        }
        out.push(entry);
    }
    out.sort_by_key(|e| std::cmp::Reverse(e["Created"].as_i64().unwrap_or(0)));
    Ok(Reply::json(&Value::Array(out)))
}
