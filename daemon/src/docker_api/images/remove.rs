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
    let items = image_delete(daemon, name, force).await?;
    Ok(Reply::json(&Value::Array(items)))
}
