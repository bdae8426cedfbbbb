//! `/containers/…`: container endpoints (create, start, stop, logs, …).

use std::sync::Arc;

use super::{ApiError, ApiRequest, Routed};
use crate::Daemon;

/// Answers the container endpoints; hands every other path back.
pub async fn route(_daemon: &Arc<Daemon>, req: ApiRequest) -> Result<Routed, ApiError> {
    Ok(Routed::NotMine(req))
}
