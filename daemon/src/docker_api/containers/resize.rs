//! `POST /containers/{id}/resize?h=&w=`: the main process's terminal size.

use std::sync::Arc;

use berth_engine::{self as engine, EngineError};
use hyper::StatusCode;

use super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &ApiRequest,
) -> Result<Reply, ApiError> {
    let (height, width) = size(req)?;
    let record = engine::find(&daemon.engine, reference)?;
    if !record.state.status.has_task() {
        return Err(ApiError::Conflict(format!(
            "Container {} is not running",
            record.id
        )));
    }
    match engine::resize(&daemon.engine, &record.id, width, height).await {
        Ok(()) => Ok(Reply::empty(StatusCode::OK)),
        // dockerd answers 200: containerd's shim resizes a process without a console
        // to nothing and reports success.
        Err(EngineError::Invalid(_)) if !record.tty => Ok(Reply::empty(StatusCode::OK)),
        Err(e) => Err(e.into()),
    }
}

/// `h` and `w`, as dockerd reads them: both required integers.
pub fn size(req: &ApiRequest) -> Result<(u16, u16), ApiError> {
    let dim = |name: &str| -> Result<u16, ApiError> {
        let v = req.query(name).unwrap_or("");
        v.parse::<u16>().map_err(|_| {
            ApiError::BadRequest(format!(
                "invalid value {v:?} for query parameter {name:?}: a terminal size from 0 to 65535"
            ))
        })
    };
    Ok((dim("h")?, dim("w")?))
}
