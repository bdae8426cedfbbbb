//! `POST /images/{name}/tag?repo=…&tag=…`: another name for an image.

use std::sync::Arc;

use berth_engine::images::is_dangling;
use hyper::StatusCode;

use super::super::{ApiError, ApiRequest, Reply};
use super::resolve::{find, store_err};
use crate::Daemon;

pub fn handle(daemon: &Arc<Daemon>, req: &ApiRequest, name: &str) -> Result<Reply, ApiError> {
    let repo = req
        .query("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::BadRequest("tag needs a repository name (repo=…)".into()))?;
    let target = super::pull::reference(repo, req.query("tag"))?;
    if target.digest.is_some() {
        return Err(ApiError::BadRequest(format!(
            "refusing to create a tag with a digest reference: {repo}"
        )));
    }
    let images = &daemon.engine.images;
    let found = find(images, name)?;
    let (_, mut rec) = super::find_image(daemon, name)?;
    let target = target.to_string();
    let old = images.store.get(&target).map_err(store_err)?;
    rec.name = target;
    images.store.put(&rec).map_err(store_err)?;
    // A dangling record of this image is no longer needed: it has a name again.
    for r in &found.records {
        if is_dangling(&r.name) {
            images.store.remove(&r.name).map_err(store_err)?;
        }
    }
    if old
        .as_ref()
        .is_some_and(|o| o.config_digest != rec.config_digest)
    {
        images.keep_dangling(old).map_err(store_err)?;
    }
    let (id, name) = (found.id.to_string(), super::resolve::familiar(&rec.name));
    daemon.engine.events_log.image("tag", &id, Some(&name));
    Ok(Reply::empty(StatusCode::CREATED))
}
