//! `/volumes…`: list, create, inspect, remove and prune volumes (the local driver),
//! one file per operation; the work is the engine's (`berth_engine::volumes`).

mod create;
mod inspect;
mod list;
mod prune;
mod remove;
mod shape;

pub use shape::volume as shape;

use std::sync::Arc;

use hyper::Method;

use super::{ApiError, ApiRequest, Routed};
use crate::Daemon;

/// Answers the volume endpoints; hands every other path back.
pub async fn route(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Routed, ApiError> {
    let method = req.method.clone();
    let path = req.path.clone();
    let reply = match (&method, path.as_str()) {
        (&Method::GET, "/volumes") => list::handle(daemon, &req).await?,
        (&Method::POST, "/volumes/create") => create::handle(daemon, &mut req).await?,
        (&Method::POST, "/volumes/prune") => prune::handle(daemon, &req).await?,
        (_, p) if p.starts_with("/volumes/") => {
            let name = p["/volumes/".len()..].to_string();
            match method {
                Method::GET => inspect::handle(daemon, name).await?,
                Method::DELETE => remove::handle(daemon, &req, name).await?,
                _ => return Ok(Routed::NotMine(req)),
            }
        }
        _ => return Ok(Routed::NotMine(req)),
    };
    Ok(Routed::Done(reply))
}
