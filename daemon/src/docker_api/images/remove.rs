//! `DELETE /images/{name}?force=…&noprune=…`: Docker's image delete (see `delete.rs`).
//!
//! `noprune` keeps a deleted image's untagged parent images in Docker; berth's images
//! have no parent images, so there is nothing it could keep, as with Docker's pulled
//! images.

use std::sync::Arc;

use serde_json::Value;

use super::super::{ApiError, ApiRequest, Reply};
use super::delete::image_delete;
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest, name: &str) -> Result<Reply, ApiError> {
    let force = req.query_bool("force")?;
    req.query_bool("noprune")?;
    let id = super::find_image(daemon, name)
        .ok()
        .map(|(id, _)| id.to_string());
    let items = image_delete(daemon, name, force).await?;
    // Docker's events: the image's ID as actor and name, once per removed name.
    let events = &daemon.engine.events_log;
    for item in &items {
        if item.get("Untagged").is_some() {
            if let Some(id) = &id {
                events.image("untag", id, Some(id));
            }
        } else if let Some(deleted) = item.get("Deleted").and_then(Value::as_str) {
            events.image("delete", deleted, Some(deleted));
        }
    }
    Ok(Reply::json(&Value::Array(items)))
}
