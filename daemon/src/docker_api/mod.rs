//! The Docker Engine HTTP API, served on berthd's `docker.sock`.
//!
//! One file per operation; this module routes a request to it and maps every error to
//! the wire exactly once (`ApiError` → status + `{"message"}`).

mod containers;
mod error;
mod events;
pub mod exec;
mod hijack;
pub mod host;
mod images;
mod info;
mod networks;
mod ping;
mod reply;
mod request;
mod system_df;
mod version;
mod volumes;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};

pub use error::ApiError;
pub use reply::{Body, Reply};
pub use request::ApiRequest;

use crate::Daemon;

/// The newest API version berth speaks; clients negotiate down to it.
pub const API_VERSION: &str = "1.41";
/// The oldest API version berth accepts.
pub const MIN_API_VERSION: &str = "1.24";

/// Answers one request. Never fails: errors become Docker-shaped error replies.
pub async fn handle(daemon: &Arc<Daemon>, req: Request<Incoming>) -> hyper::Response<Body> {
    let begun = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // `container`: the container the request is about, as the client named it (or the
    // id a create made), recorded by the handler that knows it.
    let span = tracing::info_span!(
        "docker_api",
        %method,
        %path,
        container = tracing::field::Empty
    );
    let result = match strip_version(&path) {
        Ok((version, tail)) => {
            let req = ApiRequest::new(req, tail.to_string(), version);
            tracing::Instrument::instrument(route(daemon, req), span.clone()).await
        }
        Err(err) => Err(err),
    };
    let _enter = span.enter();
    let reply = match result {
        Ok(reply) => {
            tracing::debug!(status = reply.status().as_u16(), "answered");
            reply
        }
        Err(err) => {
            if err.status().is_server_error() {
                tracing::error!(error = %err, "request failed");
            } else {
                tracing::debug!(error = %err, "request refused");
            }
            Reply::error(&err)
        }
    };
    daemon.api_metrics.observe(
        &method,
        strip_version(&path).map_or(path.as_str(), |(_, p)| p),
        reply.status(),
        begun.elapsed().as_secs_f64(),
    );
    reply.into_response()
}

async fn route(daemon: &Arc<Daemon>, req: ApiRequest) -> Result<Reply, ApiError> {
    match (&req.method, req.path.as_str()) {
        (&Method::GET, "/_ping") => return Ok(ping::handle(false)),
        (&Method::HEAD, "/_ping") => return Ok(ping::handle(true)),
        (&Method::GET, "/version") => return Ok(version::handle(&daemon.host)),
        (&Method::GET, "/info") => return info::handle(daemon),
        (&Method::GET, "/events") => return events::handle(daemon, &req),
        (&Method::GET, "/system/df") => return system_df::handle(daemon).await,
        _ => {}
    }
    // Each area answers the paths it owns and hands the others back.
    let req = match containers::route(daemon, req).await? {
        Routed::Done(reply) => return Ok(reply),
        Routed::NotMine(req) => req,
    };
    let req = match exec::route(daemon, req).await? {
        Routed::Done(reply) => return Ok(reply),
        Routed::NotMine(req) => req,
    };
    let req = match images::route(daemon, req).await? {
        Routed::Done(reply) => return Ok(reply),
        Routed::NotMine(req) => req,
    };
    let req = match volumes::route(daemon, req).await? {
        Routed::Done(reply) => return Ok(reply),
        Routed::NotMine(req) => req,
    };
    let req = match networks::route(daemon, req).await? {
        Routed::Done(reply) => return Ok(reply),
        Routed::NotMine(req) => req,
    };
    tracing::debug!(method = %req.method, path = %req.path, "no such endpoint");
    Err(ApiError::NotFound("page not found".to_string()))
}

/// What an area's router did with a request.
pub enum Routed {
    Done(Reply),
    NotMine(ApiRequest),
}

/// Strips a `/v1.NN` prefix, refusing versions outside what berth speaks; the version
/// the request is served at (berth's newest when the path names none, as dockerd
/// does) and the rest of the path.
fn strip_version(path: &str) -> Result<((u32, u32), &str), ApiError> {
    let newest = parse_version(API_VERSION).unwrap_or((1, 41));
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((newest, path));
    };
    let (version, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(asked) = parse_version(version) else {
        // Not a version prefix (e.g. `/volumes`): route the path as it is.
        return Ok((newest, path));
    };
    let oldest = parse_version(MIN_API_VERSION).unwrap_or((1, 24));
    if asked > newest {
        return Err(ApiError::BadRequest(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if asked < oldest {
        return Err(ApiError::BadRequest(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok((asked, tail))
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_stripped_and_checked() {
        assert_eq!(strip_version("/v1.41/info").ok(), Some(((1, 41), "/info")));
        assert_eq!(
            strip_version("/v1.24/_ping").ok(),
            Some(((1, 24), "/_ping"))
        );
        assert_eq!(strip_version("/info").ok(), Some(((1, 41), "/info")));
        assert_eq!(
            strip_version("/volumes/x").ok(),
            Some(((1, 41), "/volumes/x"))
        );
        let too_new = strip_version("/v1.99/info").err().map(|e| e.to_string());
        assert!(too_new.is_some_and(|m| m.contains("too new")));
        let too_old = strip_version("/v1.12/info").err().map(|e| e.to_string());
        assert!(too_old.is_some_and(|m| m.contains("too old")));
    }
}
