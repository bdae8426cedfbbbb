//! `/networks…`: list, create, inspect, remove and prune bridge networks, one file per
//! operation; the work is the engine's (`berth_engine::networks`).

mod connect;
mod create;
mod disconnect;
mod inspect;
mod list;
mod prune;
mod remove;
mod shape;

use std::sync::Arc;

use hyper::Method;

use super::{ApiError, ApiRequest, Routed};
use crate::Daemon;

/// Answers the network endpoints; hands every other path back.
pub async fn route(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Routed, ApiError> {
    let method = req.method.clone();
    let path = req.path.clone();
    let reply = match (&method, path.as_str()) {
        (&Method::GET, "/networks") => list::handle(daemon, &req).await?,
        (&Method::POST, "/networks/create") => create::handle(daemon, &mut req).await?,
        (&Method::POST, "/networks/prune") => prune::handle(daemon, &req).await?,
        (&Method::POST, p) if p.starts_with("/networks/") && p.ends_with("/connect") => {
            let reference = p["/networks/".len()..p.len() - "/connect".len()].to_string();
            connect::handle(daemon, &mut req, reference).await?
        }
        (&Method::POST, p) if p.starts_with("/networks/") && p.ends_with("/disconnect") => {
            let reference = p["/networks/".len()..p.len() - "/disconnect".len()].to_string();
            disconnect::handle(daemon, &mut req, reference).await?
        }
        (_, p) if p.starts_with("/networks/") && !p["/networks/".len()..].contains('/') => {
            let reference = p["/networks/".len()..].to_string();
            match method {
                Method::GET => inspect::handle(daemon, &req, reference).await?,
                Method::DELETE => remove::handle(daemon, reference).await?,
                _ => return Ok(Routed::NotMine(req)),
            }
        }
        _ => return Ok(Routed::NotMine(req)),
    };
    Ok(Routed::Done(reply))
}

/// The `Container` of a connect or disconnect body, required as dockerd requires it.
fn container_of(body: &serde_json::Value) -> Result<String, ApiError> {
    match body["Container"].as_str().unwrap_or_default() {
        "" => Err(ApiError::BadRequest("Container is required".into())),
        c => Ok(c.to_string()),
    }
}
