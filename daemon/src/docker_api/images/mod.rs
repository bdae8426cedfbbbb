//! `/images/…`: image endpoints (pull, list, inspect, tag, push, save, load, …).

use std::sync::Arc;

use super::{ApiError, ApiRequest, Routed};
use crate::Daemon;

/// Answers the image endpoints; hands every other path back.
pub async fn route(_daemon: &Arc<Daemon>, req: ApiRequest) -> Result<Routed, ApiError> {
    Ok(Routed::NotMine(req))
}
