//! `/images/…`: image endpoints. Landed: load (`docker load`), import (`create` with
//! `fromSrc`), list, inspect, tag, remove. Pull, push, save, history and prune are
//! still to come and answer 501 with a message saying so.

use std::io::Write;
use std::sync::Arc;

use berth_image::{ImageRecord, Platform, Reference};
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::{ApiError, ApiRequest, Reply, Routed};
use crate::engine;
use crate::Daemon;

/// The largest archive or tarball berthd accepts in one request.
const MAX_UPLOAD: u64 = 64 << 30;

/// Answers the image endpoints; hands every other path back.
pub async fn route(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Routed, ApiError> {
    let method = req.method.clone();
    let path = req.path.clone();
    let reply = match (&method, path.as_str()) {
        (&Method::POST, "/images/load") => load(daemon, &mut req).await?,
        (&Method::POST, "/images/create") => create(daemon, &mut req).await?,
        (&Method::GET, "/images/json") => list(daemon)?,
        (&Method::GET, "/images/search") => {
            return Err(ApiError::NotImplemented(
                "search is not supported: berth does not query registries' search APIs".into(),
            ))
        }
        (_, p) if p.starts_with("/images/") => {
            let rest = &p["/images/".len()..];
            let (name, action) = match rest.rsplit_once('/') {
                Some((n, a)) if ["json", "tag", "history", "push", "get"].contains(&a) => (n, a),
                _ => (rest, ""),
            };
            match (&method, action) {
                (&Method::GET, "json") => inspect(daemon, name)?,
                (&Method::POST, "tag") => tag(daemon, name, &req)?,
                (&Method::DELETE, "") => remove(daemon, name, &req)?,
                _ => {
                    return Err(ApiError::NotImplemented(format!(
                        "{method} /images/…/{action} is not supported by berth yet"
                    )))
                }
            }
        }
        _ => return Ok(Routed::NotMine(req)),
    };
    Ok(Routed::Done(reply))
}

/// The name docker users see: `busybox:latest` for `docker.io/library/busybox:latest`.
pub fn familiar(name: &str) -> String {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    n.strip_prefix("library/").unwrap_or(n).to_string()
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Streams the request body into a temp file under the root (archives can be large).
async fn spool(daemon: &Daemon, req: &mut ApiRequest) -> Result<tempfile::NamedTempFile, ApiError> {
    let tmp_dir = daemon.config.root.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(internal)?;
    let mut file = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(internal)?;
    let mut written = 0u64;
    if let Some(mut body) = req.take_body() {
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::BadRequest(format!("reading the upload: {e}")))?;
            if let Some(data) = frame.data_ref() {
                written += data.len() as u64;
                if written > MAX_UPLOAD {
                    return Err(ApiError::BadRequest(format!(
                        "upload larger than {MAX_UPLOAD} bytes"
                    )));
                }
                file.write_all(data).map_err(internal)?;
            }
        }
    }
    file.flush().map_err(internal)?;
    Ok(file)
}

fn json_lines(lines: &[Value]) -> Reply {
    let mut body = String::new();
    for l in lines {
        body.push_str(&l.to_string());
        body.push('\n');
    }
    let (tx, reply) = Reply::channel("application/json");
    tokio::spawn(async move {
        let _ = tx.send(bytes::Bytes::from(body)).await;
    });
    reply
}

/// `POST /images/load`: a docker-archive or OCI-archive tar.
async fn load(daemon: &Arc<Daemon>, req: &mut ApiRequest) -> Result<Reply, ApiError> {
    let file = spool(daemon, req).await?;
    let d = Arc::clone(daemon);
    let records = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(file.path())?;
        berth_image::archive::load(
            &d.images.content,
            &d.images.snapshots,
            &d.images.store,
            std::io::BufReader::new(f),
            &Platform::default_linux_amd64(),
        )
        .map_err(|e| std::io::Error::other(e.to_string()))
    })
    .await
    .map_err(internal)?
    .map_err(|e| ApiError::BadRequest(format!("loading the image archive: {e}")))?;
    let lines: Vec<Value> = records
        .iter()
        .map(|r| json!({"stream": format!("Loaded image: {}\n", familiar(&r.name))}))
        .collect();
    Ok(json_lines(&lines))
}

/// `POST /images/create`: `fromSrc=-` imports the body as a root filesystem tarball.
async fn create(daemon: &Arc<Daemon>, req: &mut ApiRequest) -> Result<Reply, ApiError> {
    match req.query("fromSrc") {
        Some("-") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
            "importing from {other:?} is not supported: send the tarball in the body (fromSrc=-)"
        )))
        }
        None => {
            return Err(ApiError::NotImplemented(
                "pulling through the Docker API is not supported by berth yet".into(),
            ))
        }
    }
    let repo = req.query("repo").unwrap_or("").to_string();
    let tag = req.query("tag").unwrap_or("").to_string();
    let name = match (repo.as_str(), tag.as_str()) {
        ("", _) => {
            return Err(ApiError::BadRequest(
                "import needs a repository name (repo=)".into(),
            ))
        }
        (r, "") => r.to_string(),
        (r, t) => format!("{r}:{t}"),
    };
    let name = engine::normalise_image(&name)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid reference format: {name}")))?;
    let file = spool(daemon, req).await?;
    let d = Arc::clone(daemon);
    let record = tokio::task::spawn_blocking(move || {
        berth_image::import::import(
            &d.images.content,
            &d.images.snapshots,
            &d.images.store,
            file.path(),
            &name,
            &Platform::default_linux_amd64(),
            None,
        )
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(internal)?
    .map_err(|e| ApiError::BadRequest(format!("importing the tarball: {e}")))?;
    Ok(json_lines(&[
        json!({"status": record.config_digest.to_string()}),
    ]))
}

fn records(daemon: &Daemon) -> Result<Vec<ImageRecord>, ApiError> {
    daemon.images.store.list().map_err(internal)
}

fn created_unix(daemon: &Daemon, r: &ImageRecord) -> i64 {
    engine::image_config(&daemon.images, r)
        .ok()
        .and_then(|c| c.created)
        .and_then(|c| humantime::parse_rfc3339_weak(&c).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(r.created as i64)
}

/// `GET /images/json`: one entry per image id, with every name it has.
fn list(daemon: &Daemon) -> Result<Reply, ApiError> {
    let mut by_id: std::collections::BTreeMap<String, Vec<ImageRecord>> = Default::default();
    for r in records(daemon)? {
        by_id
            .entry(r.config_digest.to_string())
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for (id, recs) in by_id {
        let first = &recs[0];
        let tags: Vec<String> = recs.iter().map(|r| familiar(&r.name)).collect();
        let digests: Vec<String> = recs
            .iter()
            .filter_map(|r| {
                Reference::parse(&r.name)
                    .ok()
                    .map(|n| format!("{}@{}", familiar(&n.name()), r.manifest_digest))
            })
            .collect();
        out.push(json!({
            "Id": id,
            "ParentId": "",
            "RepoTags": tags,
            "RepoDigests": digests,
            "Created": created_unix(daemon, first),
            "Size": first.size,
            "SharedSize": -1,
            "VirtualSize": first.size,
            "Labels": Value::Null,
            "Containers": -1,
        }));
    }
    out.sort_by_key(|v| std::cmp::Reverse(v["Created"].as_i64().unwrap_or(0)));
    Ok(Reply::json(&Value::Array(out)))
}

fn find(daemon: &Daemon, name: &str) -> Result<ImageRecord, ApiError> {
    engine::find_image(&daemon.images, name).map_err(ApiError::from)
}

/// `GET /images/{name}/json`.
fn inspect(daemon: &Daemon, name: &str) -> Result<Reply, ApiError> {
    let r = find(daemon, name)?;
    let config = engine::image_config(&daemon.images, &r).map_err(ApiError::from)?;
    let id = r.config_digest.to_string();
    let names: Vec<String> = records(daemon)?
        .into_iter()
        .filter(|x| x.config_digest == r.config_digest)
        .map(|x| familiar(&x.name))
        .collect();
    Ok(Reply::json(&json!({
        "Id": id,
        "RepoTags": names,
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": config.created.clone().unwrap_or_default(),
        "Container": "",
        "DockerVersion": "",
        "Author": "",
        "Config": config.config,
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": r.size,
        "VirtualSize": r.size,
        "GraphDriver": {"Name": "overlay", "Data": null},
        "RootFS": {"Type": "layers", "Layers": r.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })))
}

/// `POST /images/{name}/tag?repo=&tag=`.
fn tag(daemon: &Daemon, name: &str, req: &ApiRequest) -> Result<Reply, ApiError> {
    let r = find(daemon, name)?;
    let repo = req.query("repo").unwrap_or("");
    let t = req.query("tag").unwrap_or("");
    let target = if t.is_empty() {
        repo.to_string()
    } else {
        format!("{repo}:{t}")
    };
    let target = engine::normalise_image(&target)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid reference format: {target:?}")))?;
    let mut new = r.clone();
    new.name = target;
    daemon.images.store.put(&new).map_err(internal)?;
    Ok(Reply::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}`: untags a name; an id removes every name of the image.
/// Refused while a container uses the image, unless forced.
fn remove(daemon: &Daemon, name: &str, req: &ApiRequest) -> Result<Reply, ApiError> {
    let force = req.query_bool("force")?;
    let r = find(daemon, name)?;
    let id = r.config_digest.to_string();
    let by_name = engine::normalise_image(name).is_some_and(|n| n == r.name);
    let all = records(daemon)?;
    let same: Vec<&ImageRecord> = all
        .iter()
        .filter(|x| x.config_digest == r.config_digest)
        .collect();
    let targets: Vec<String> = if by_name {
        vec![r.name.clone()]
    } else {
        same.iter().map(|x| x.name.clone()).collect()
    };
    let last_name = targets.len() == same.len();
    if last_name && !force {
        if let Some(c) = engine::list(daemon)?.into_iter().find(|c| c.image_id == id) {
            return Err(ApiError::Conflict(format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                &c.id[..12],
                &id.trim_start_matches("sha256:")[..12]
            )));
        }
    }
    let mut out = Vec::new();
    for t in &targets {
        daemon.images.store.remove(t).map_err(internal)?;
        out.push(json!({"Untagged": familiar(t)}));
    }
    if last_name {
        out.push(json!({"Deleted": id}));
        // Blobs and layers no other image uses; a container's layers stay.
        daemon
            .images
            .store
            .gc(&daemon.images.content, &daemon.images.snapshots)
            .map_err(internal)?;
    }
    Ok(Reply::json(&Value::Array(out)))
}
