//! `POST /exec/{id}/resize?h=&w=`: an exec's terminal size.

use std::sync::Arc;

use berth_engine::{self as engine, EngineError};
use hyper::StatusCode;

use super::{exec_error, ApiError, ApiRequest};
use crate::docker_api::containers::terminal_size;
use crate::docker_api::Reply;
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, id: &str, req: &ApiRequest) -> Result<Reply, ApiError> {
    let (height, width) = terminal_size(req)?;
    let info = engine::exec_inspect(&daemon.engine, id).map_err(|e| exec_error(id, e))?;
    match engine::exec_resize(&daemon.engine, id, width, height).await {
        Ok(()) => Ok(Reply::empty(StatusCode::OK)),
        // As dockerd: containerd resizes an exec without a console to nothing.
        Err(EngineError::Invalid(_)) if !info.config.tty => Ok(Reply::empty(StatusCode::OK)),
        Err(e) => Err(exec_error(id, e)),
    }
}
