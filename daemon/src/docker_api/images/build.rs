//! `POST /build`: Docker's classic builder protocol. The body is the context as a tar
//! (plain or gzip); the query names the Dockerfile in it, the tags, build args, target
//! and labels. Parse errors answer 400 before anything runs; then the build's text
//! streams as `{"stream": …}` lines, the result as `{"aux": {"ID": …}}`, a failure as
//! `{"errorDetail": …}`. Every parameter the docker CLI sends is applied, or refused by
//! name when set to anything but its zero value.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use berth_build::dockerfile::{self, NetworkMode};
use berth_build::executor::{self, BuildRequest, Output};
use serde_json::json;

use super::super::{ApiError, ApiRequest, Reply};
use super::stream::{spool_body, Messages};
use crate::Daemon;

/// Parameters whose zero value (what the CLI sends by default) is accepted and any
/// other refused, with why.
const ZERO_ONLY: &[(&str, &[&str], &str)] = &[
    ("remote", &[""], "a remote context (URL or git)"),
    ("memory", &["", "0"], "--memory"),
    ("memswap", &["", "0"], "--memory-swap"),
    ("cpushares", &["", "0"], "--cpu-shares"),
    ("cpusetcpus", &[""], "--cpuset-cpus"),
    ("cpusetmems", &[""], "--cpuset-mems"),
    ("cpuperiod", &["", "0"], "--cpu-period"),
    ("cpuquota", &["", "0"], "--cpu-quota"),
    ("cgroupparent", &[""], "--cgroup-parent"),
    ("shmsize", &["", "0"], "--shm-size"),
    ("ulimits", &["", "null", "[]", "{}"], "--ulimit"),
    ("cachefrom", &["", "null", "[]"], "--cache-from"),
    ("extrahosts", &[""], "--add-host"),
    ("securityopt", &[""], "--security-opt"),
    ("isolation", &["", "default"], "--isolation"),
    ("outputs", &["", "null", "[]"], "--output"),
    ("session", &[""], "a BuildKit session"),
    ("buildid", &[""], "a BuildKit build id"),
    (
        "version",
        &["", "1"],
        "BuildKit (version=2); use DOCKER_BUILDKIT=0",
    ),
];

/// Parameters read below.
const APPLIED: &[&str] = &[
    "dockerfile",
    "t",
    "q",
    "nocache",
    "buildargs",
    "labels",
    "target",
    "networkmode",
    "platform",
    "rm",
    "forcerm",
    "pull",
    "squash",
    "progress",
];

fn bad(m: String) -> ApiError {
    ApiError::BadRequest(m)
}

fn json_map(req: &ApiRequest, name: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(raw) = req.query(name).filter(|s| !s.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let m: Option<BTreeMap<String, Option<String>>> = serde_json::from_str(raw)
        .map_err(|e| bad(format!("invalid {name} parameter {raw:?}: {e}")))?;
    // A build arg with a null value is one the client found unset: none.
    Ok(m.unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// berth's CLI sends each `--secret` as a header of its own, never in the context
/// tar (see docs/build.md): `X-Berth-Build-Secret: <base64 id>:<base64 content>`.
pub const SECRET_HEADER: &str = "x-berth-build-secret";

fn secrets(req: &ApiRequest) -> Result<BTreeMap<String, Vec<u8>>, ApiError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = BTreeMap::new();
    for v in req.headers.get_all(SECRET_HEADER) {
        let parsed = v.to_str().ok().and_then(|v| {
            let (id, content) = v.split_once(':')?;
            let id = String::from_utf8(b64.decode(id.trim()).ok()?).ok()?;
            Some((id, b64.decode(content.trim()).ok()?))
        });
        // The value is not echoed back: it holds a secret.
        let Some((id, content)) = parsed.filter(|(id, _)| !id.is_empty()) else {
            return Err(bad(format!(
                "invalid {SECRET_HEADER} header: want base64(id):base64(content)"
            )));
        };
        if out.insert(id.clone(), content).is_some() {
            return Err(bad(format!("the build secret {id} is given twice")));
        }
    }
    Ok(out)
}

/// Reads and checks the query: what the build takes, or the refusal.
fn options(req: &ApiRequest) -> Result<(BuildRequest, bool, String), ApiError> {
    for (k, v) in &req.query {
        if APPLIED.contains(&k.as_str()) {
            continue;
        }
        match ZERO_ONLY.iter().find(|(n, _, _)| n == k) {
            Some((_, zeros, what)) => {
                if !zeros.contains(&v.as_str()) {
                    return Err(bad(format!(
                        "the build parameter {k}={v} ({what}) is not supported by berth's builder"
                    )));
                }
            }
            None => {
                return Err(bad(format!(
                    "unknown build parameter {k:?}: berth's builder does not apply it"
                )))
            }
        }
    }
    let mut tags = Vec::new();
    for (k, t) in &req.query {
        if k != "t" || t.is_empty() {
            continue;
        }
        let Some(n) = berth_engine::normalise_image(t) else {
            return Err(bad(format!("invalid tag {t:?}: invalid reference format")));
        };
        if n.contains('@') {
            return Err(bad(format!(
                "invalid tag {t:?}: a build result cannot be tagged by digest"
            )));
        }
        tags.push(n);
    }
    if let Some(p) = req.query("platform").filter(|p| !p.is_empty()) {
        let host = host_platform();
        if p != host && p != "linux" {
            return Err(bad(format!(
                "platform {p:?} is not supported: berth builds for {host}"
            )));
        }
    }
    let network = match req.query("networkmode").unwrap_or("") {
        "" | "default" | "bridge" => None,
        "host" => Some(NetworkMode::Host),
        "none" => Some(NetworkMode::None),
        other => {
            return Err(bad(format!(
                "network mode {other:?} is not supported for builds: use default, host or none"
            )))
        }
    };
    let quiet = req.query_bool("q")?;
    for (name, flag) in [("squash", "--squash")] {
        if req.query_bool(name)? {
            return Err(bad(format!(
                "the build parameter {name} ({flag}) is not supported by berth's builder"
            )));
        }
    }
    // rm=false (the Python SDK's default) keeps the containers of successful steps,
    // as Docker does; failed steps' containers always go (forcerm is berth's rule).
    let keep_containers = match req.query("rm") {
        None | Some("") => false,
        Some(_) => !req.query_bool("rm")?,
    };
    req.query_bool("forcerm")?;
    let no_cache = req.query_bool("nocache")?;
    let dockerfile = req
        .query("dockerfile")
        .filter(|s| !s.is_empty())
        .unwrap_or("Dockerfile")
        .to_string();
    let target = req
        .query("target")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let r = BuildRequest {
        dockerfile: dockerfile::Dockerfile {
            file: dockerfile.clone(),
            directives: Default::default(),
            meta_args: vec![],
            stages: vec![],
        },
        context: Default::default(),
        tags,
        build_args: json_map(req, "buildargs")?,
        target,
        labels: json_map(req, "labels")?,
        network,
        no_cache,
        cancelled: None,
        keep_containers,
        pull: None,
        secrets: secrets(req)?,
        timings: match req.query("progress").unwrap_or("") {
            "" | "auto" | "tty" => false,
            "plain" => true,
            other => {
                return Err(bad(format!(
                    "invalid progress mode {other:?}: use auto, plain or tty"
                )))
            }
        },
    };
    Ok((r, quiet, dockerfile))
}

/// Unpacks the spooled context into `dir` (names kept inside it by the tar reader).
fn unpack(tar: &std::path::Path, dir: &std::path::Path) -> Result<(), ApiError> {
    let mut f = std::fs::File::open(tar).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut magic = [0u8; 2];
    let n = f
        .read(&mut magic)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let f = std::fs::File::open(tar).map_err(|e| ApiError::Internal(e.to_string()))?;
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.unpack(dir)
        .map_err(|e| bad(format!("reading the build context: {e}")))
}

/// As dockerd does: the Dockerfile and `.dockerignore` stay out of the context the
/// steps see when `.dockerignore` lists them (the docker CLI lists a Dockerfile it
/// added from outside the context or from STDIN).
fn remove_ignored_build_files(dir: &std::path::Path, dockerfile: &str) -> Result<(), ApiError> {
    let Ok(text) = std::fs::read_to_string(dir.join(".dockerignore")) else {
        return Ok(());
    };
    let ignore = berth_build::dockerignore::Ignore::parse(&text)
        .map_err(|e| bad(format!("reading .dockerignore: {e}")))?;
    for f in [dockerfile, ".dockerignore"] {
        if ignore.is_excluded(f) {
            if let Ok(p) = berth_build::executor::copy::resolve(dir, f) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(())
}

/// `--pull`: the image pulled anonymously (the build already holds the GC lock).
async fn pull_for_build(daemon: &Arc<Daemon>, image: &str) -> Result<(), String> {
    let r = super::pull::reference(image, None).map_err(|e| e.to_string())?;
    let client = super::registry_auth::client(daemon, &r.registry, &Default::default())
        .map_err(|e| e.to_string())?;
    let name = r.to_string();
    let images = &daemon.engine.images;
    let old = images.store.get(&name).ok().flatten();
    let puller = berth_image::Puller::new(
        client,
        images.content.clone(),
        images.snapshots.clone(),
        images.store.clone(),
    );
    let rec = puller
        .pull(&name, &Default::default())
        .await
        .map_err(|e| format!("pulling {image}: {e}"))?;
    if let Some(old) = old.filter(|o| o.config_digest != rec.config_digest) {
        let _ = images.keep_dangling(Some(old));
    }
    Ok(())
}

pub async fn handle(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Reply, ApiError> {
    let options = options(&req);
    let images = &daemon.engine.images;
    // The body is read before a bad parameter is answered: a client still sending
    // its context would otherwise see a broken pipe instead of the error.
    let spooled = spool_body(&mut req, &images.uploads).await?;
    let (mut build, quiet, dockerfile_name) = options?;
    let dir = tempfile::Builder::new()
        .prefix("build-context-")
        .tempdir_in(&images.uploads)
        .map_err(|e| ApiError::Internal(format!("a directory for the build context: {e}")))?;
    {
        let (tar, d) = (spooled.path().to_path_buf(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || unpack(&tar, &d))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    }
    drop(spooled);
    let path = berth_build::executor::copy::resolve(dir.path(), &dockerfile_name)
        .map_err(|e| bad(e.to_string()))?;
    let text = std::fs::read_to_string(&path).map_err(|_| {
        bad(format!(
            "Cannot locate specified Dockerfile: {dockerfile_name}"
        ))
    })?;
    build.dockerfile =
        dockerfile::parse(&dockerfile_name, &text).map_err(|e| bad(e.to_string()))?;
    remove_ignored_build_files(dir.path(), &dockerfile_name)?;
    build
        .dockerfile
        .target(build.target.as_deref())
        .map_err(|e| bad(e.to_string()))?;
    build.context = dir.path().to_path_buf();
    if req.query_bool("pull")? {
        let d = daemon.clone();
        build.pull = Some(Arc::new(move |image: String| {
            let d = d.clone();
            Box::pin(async move { pull_for_build(&d, &image).await })
        }));
    }

    let (msgs, reply) = Messages::new();
    let watch = msgs.clone();
    build.cancelled = Some(Arc::new(move || watch.is_closed()));
    let d = daemon.clone();
    // The build's text goes through an unbounded queue so none is dropped when the
    // client reads slower than a RUN writes.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let fwd = msgs.clone();
    let forward = tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            fwd.send(json!({ "stream": s })).await;
        }
    });
    tokio::spawn(async move {
        let _dir = dir;
        let out: Output = Arc::new(move |s: String| {
            if !quiet {
                let _ = tx.send(s);
            }
        });
        let result = executor::build(&d.engine, &build, &out).await;
        drop(out);
        let _ = forward.await;
        match result {
            Ok(built) => {
                msgs.send(json!({ "aux": { "ID": built.id } })).await;
                if quiet {
                    msgs.send(json!({ "stream": format!("{}\n", built.id) }))
                        .await;
                }
                for t in &built.tags {
                    d.engine.events_log.image("tag", &built.id, Some(t));
                }
            }
            Err(e) => msgs.error(&e.to_string()).await,
        }
    });
    Ok(reply)
}
