//! `GET /images/json`: one entry per image ID, with `filters` (`dangling`, `label`,
//! `reference`, `before`, `since`), answered as Docker 20.10 does: an image lists the
//! references the `reference` patterns match (each pattern against the familiar
//! `name:tag` / `name@digest` and the familiar name; several patterns are OR'ed), an
//! image without references is `<none>:<none>` / `<none>@<none>`, and `dangling=true`
//! keeps the images without tags (those known only by digest too).

use std::sync::Arc;

use serde_json::Value;

use super::super::{ApiError, ApiRequest, Reply};
use super::filters;
use super::resolve::{familiar_match, find, group, references, store_err, tags_digests};
use super::shape;
use crate::Daemon;

pub fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["dangling", "label", "reference", "before", "since"])?;
    let dangling = filters::boolean(&f, "dangling")?;
    let patterns = filters::references(&f)?;
    let images = &daemon.engine.images;
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
        let rec = &records[0];
        let created = shape::created(&cfg, rec);
        if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
            continue;
        }
        if !filters::labels_match(&f, &shape::labels(&cfg)) {
            continue;
        }
        let refs = references(&records).into_iter().filter(|r| {
            patterns
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| familiar_match(p, &r.name)))
        });
        let (mut tags, mut digests) = tags_digests(refs);
        if tags.is_empty() && digests.is_empty() {
            // No reference (left by the filter): a dangling image, unless filtered.
            if dangling == Some(false) || patterns.is_some() {
                continue;
            }
            tags = vec!["<none>:<none>".to_string()];
            digests = vec!["<none>@<none>".to_string()];
        } else if dangling == Some(true) && !tags.is_empty() {
            continue;
        }
        out.push(shape::list_entry(&id, tags, digests, rec, &cfg));
    }
    out.sort_by_key(|e| std::cmp::Reverse(e["Created"].as_i64().unwrap_or(0)));
    Ok(Reply::json(&Value::Array(out)))
}
