//! `/images/…`, `/build` and `/auth`: image endpoints (build, pull, import, list, inspect, history, tag,
//! remove, prune, push, save, load, search) and registry login.
//!
//! One file per operation; names may contain slashes (`host:5000/ns/app:1`), so
//! `/images/{name}/{op}` is split at the last slash.

mod archive;
mod auth;
mod build;
mod build_prune;
mod commit;
mod delete;
pub mod df;
pub(super) mod filters;
mod import;
mod inspect;
mod list;
pub mod prune;
mod pull;
mod push;
mod registry_auth;
mod remove;
mod resolve;
mod shape;
pub(crate) mod stream;
mod tag;

use std::sync::Arc;

use hyper::Method;

use super::{ApiError, ApiRequest, Routed};
use crate::Daemon;

/// Answers the image endpoints; hands every other path back.
pub async fn route(daemon: &Arc<Daemon>, req: ApiRequest) -> Result<Routed, ApiError> {
    let method = req.method.clone();
    let path = req.path.clone();
    let reply = match (&method, path.as_str()) {
        (&Method::POST, "/auth") => auth::login(daemon, req).await?,
        (&Method::POST, "/build") => build::handle(daemon, req).await?,
        (&Method::POST, "/build/prune") => build_prune::handle(daemon, &req).await?,
        (&Method::POST, "/commit") => commit::handle(daemon, req).await?,
        (&Method::POST, "/images/create") => {
            if let Some(src) = req.query("fromSrc").map(str::to_string) {
                import::handle(daemon, req, &src).await?
            } else if let Some(from) = req.query("fromImage").map(str::to_string) {
                pull::handle(daemon, req, &from).await?
            } else {
                return Err(ApiError::BadRequest(
                    "images/create needs fromImage (pull) or fromSrc (import)".into(),
                ));
            }
        }
        (&Method::GET, "/images/json") => list::handle(daemon, &req)?,
        (&Method::GET, "/images/search") => return Err(auth::search()),
        (&Method::POST, "/images/load") => archive::load(daemon, req).await?,
        (&Method::POST, "/images/prune") => prune::handle(daemon, &req).await?,
        (&Method::GET, "/images/get") => {
            let names: Vec<String> = req
                .query
                .iter()
                .filter(|(k, _)| k == "names")
                .map(|(_, v)| v.clone())
                .collect();
            archive::save(daemon, &names)?
        }
        (_, p) if p.starts_with("/images/") => {
            let rest = percent_decode(&p["/images/".len()..])?;
            let rest = rest.as_str();
            if method == Method::DELETE {
                remove::handle(daemon, &req, rest).await?
            } else {
                let Some((name, op)) = rest.rsplit_once('/') else {
                    return Ok(Routed::NotMine(req));
                };
                match (&method, op) {
                    (&Method::GET, "json") => inspect::inspect(daemon, name)?,
                    (&Method::GET, "history") => inspect::history(daemon, name)?,
                    (&Method::GET, "get") => archive::save(daemon, &[name.to_string()])?,
                    (&Method::POST, "tag") => tag::handle(daemon, &req, name)?,
                    (&Method::POST, "push") => push::handle(daemon, &req, name).await?,
                    _ => return Ok(Routed::NotMine(req)),
                }
            }
        }
        _ => return Ok(Routed::NotMine(req)),
    };
    Ok(Routed::Done(reply))
}

/// How many images (IDs) there are, for `/info`.
pub fn count(daemon: &Daemon) -> Result<usize, ApiError> {
    let records = daemon
        .engine
        .images
        .store
        .list()
        .map_err(resolve::store_err)?;
    Ok(resolve::group(records).len())
}

/// The image a client names (reference, ID or unique ID prefix), for container
/// creation: its ID and the record to run (the named one, else any of its names).
/// Errors are Docker's (`No such image: x`, ambiguous prefixes).
pub fn find_image(
    daemon: &Daemon,
    name: &str,
) -> Result<(berth_snapshotter::Digest, berth_image::ImageRecord), ApiError> {
    let found = resolve::find(&daemon.engine.images, name)?;
    let rec = match found.by_name {
        Some(rec) => rec,
        None => found
            .records
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::NotFound(format!("No such image: {name}")))?,
    };
    Ok((found.id, rec))
}

/// Decodes `%XX` escapes in a path (clients escape `@`, `:` or `/` in image names).
fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::BadRequest(format!("bad escape in path {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::BadRequest(format!("path {s:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(
            percent_decode("a%40sha256%3Aab/json").ok().as_deref(),
            Some("a@sha256:ab/json")
        );
        assert_eq!(percent_decode("plain").ok().as_deref(), Some("plain"));
        assert!(percent_decode("bad%zz").is_err());
    }
}
