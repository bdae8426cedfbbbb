//! `GET /images/{name}/json` and `GET /images/{name}/history`.

use std::sync::Arc;

use super::super::{ApiError, Reply};
use super::resolve::find;
use super::shape;
use crate::Daemon;

pub fn inspect(daemon: &Arc<Daemon>, name: &str) -> Result<Reply, ApiError> {
    let found = find(&daemon.engine.images, name)?;
    let cfg = shape::config(&daemon.engine.images.content, &found.id)?;
    Ok(Reply::json(&shape::inspect(
        &found.id,
        &found.records,
        &cfg,
    )))
}

pub fn history(daemon: &Arc<Daemon>, name: &str) -> Result<Reply, ApiError> {
    let found = find(&daemon.engine.images, name)?;
    let cfg = shape::config(&daemon.engine.images.content, &found.id)?;
    Ok(Reply::json(&shape::history(
        &found.id,
        &found.records,
        &cfg,
    )))
}
