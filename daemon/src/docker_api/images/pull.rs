//! `POST /images/create?fromImage=…&tag=…`: pulls an image, streaming Docker's JSON
//! progress messages per layer. An error before any progress is an HTTP error (as
//! Docker answers a pull of an unknown image); later errors end the stream with an
//! `errorDetail` message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_image::pull::LayerState;
use berth_image::{Progress, PullError, PullOptions, Puller, Reference, RegistryError};
use serde_json::json;
use tokio::sync::Notify;

use super::super::{ApiError, ApiRequest, Reply};
use super::registry_auth;
use super::resolve::familiar;
use super::stream::Messages;
use crate::Daemon;

/// The reference a pull asks for: `fromImage` with `tag` (a tag or a digest).
pub fn reference(from: &str, tag: Option<&str>) -> Result<Reference, ApiError> {
    let text = match tag {
        None | Some("") => from.to_string(),
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
    };
    Reference::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Maps a pull failure to the status Docker would answer.
pub fn pull_error(err: &PullError) -> ApiError {
    let msg = err.to_string();
    match err {
        PullError::Reference(_) => ApiError::BadRequest(msg),
        PullError::Registry(
            RegistryError::ManifestUnknown { .. }
            | RegistryError::NameUnknown { .. }
            | RegistryError::NotFound { .. },
        ) => ApiError::NotFound(msg),
        PullError::Manifest { .. } => ApiError::BadRequest(msg),
        _ => ApiError::Internal(msg),
    }
}

fn short(d: &berth_snapshotter::Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Turns layer progress into Docker's messages, throttled to ~50 per layer.
struct Reporter {
    msgs: Messages,
    started: Arc<Notify>,
    sent: Arc<AtomicBool>,
    /// Docker's first line: `{"status":"Pulling from library/busybox","id":"latest"}`.
    header: serde_json::Value,
    seen: Mutex<HashMap<String, (LayerState, u64)>>,
}

impl Reporter {
    fn report(&self, p: &Progress) {
        let id = short(&p.layer);
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.is_empty() {
            self.msgs.try_send(self.header.clone());
            self.sent.store(true, Ordering::SeqCst);
            self.started.notify_one();
        }
        let bucket = p.done.saturating_mul(50).checked_div(p.total).unwrap_or(0);
        let prev = seen.insert(id.clone(), (p.state, bucket));
        if prev == Some((p.state, bucket)) {
            return;
        }
        let first = prev.is_none();
        let msg = |status: &str| json!({ "status": status, "progressDetail": {}, "id": id });
        match p.state {
            LayerState::Exists => self.msgs.try_send(msg("Already exists")),
            LayerState::Downloading | LayerState::Unpacking => {
                if first {
                    self.msgs.try_send(msg("Pulling fs layer"));
                }
                let status = if p.state == LayerState::Downloading {
                    "Downloading"
                } else {
                    "Extracting"
                };
                self.msgs.try_send(json!({
                    "status": status,
                    "progressDetail": { "current": p.done, "total": p.total },
                    "progress": bar(p.done, p.total),
                    "id": id,
                }));
            }
            LayerState::Done => {
                if first {
                    self.msgs.try_send(msg("Pulling fs layer"));
                }
                self.msgs.try_send(msg("Download complete"));
                self.msgs.try_send(msg("Pull complete"));
            }
        }
    }
}

/// Docker's progress bar text: `[=====>     ]  1.2MB/3.4MB`.
pub fn bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let mut s = String::from("[");
    s.push_str(&"=".repeat(filled.saturating_sub(1)));
    if filled > 0 {
        s.push('>');
    }
    s.push_str(&" ".repeat(WIDTH as usize - filled));
    s.push_str(&format!("]  {}/{}", human(done), human(total)));
    s
}

fn human(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.3}GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}kB", n / 1e3)
    } else {
        format!("{n}B")
    }
}

pub async fn handle(daemon: &Arc<Daemon>, req: ApiRequest, from: &str) -> Result<Reply, ApiError> {
    let r = reference(from, req.query("tag"))?;
    let mut opts = PullOptions::default();
    if let Some(p) = req.query("platform").filter(|p| !p.is_empty()) {
        opts.platform = p
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("invalid platform {p:?}: {e}")))?;
    }
    let auth = registry_auth::from_header(&req)?;
    let client = registry_auth::client(daemon, &r.registry, &auth)?;
    let name = r.to_string();
    let (msgs, reply) = Messages::new();
    let started = Arc::new(Notify::new());
    let object = r.tag.clone().or(r.digest.as_ref().map(|d| d.to_string()));
    let sent = Arc::new(AtomicBool::new(false));
    let reporter = Arc::new(Reporter {
        msgs: msgs.clone(),
        started: started.clone(),
        sent: sent.clone(),
        header: json!({ "status": format!("Pulling from {}", r.repository), "id": object }),
        seen: Mutex::new(HashMap::new()),
    });
    let (progress, timer) = daemon
        .engine
        .metrics
        .pull_progress(Some(Arc::new(move |p: &Progress| reporter.report(p))));
    opts.progress = Some(progress);

    let d = daemon.clone();
    let old = d
        .engine
        .images
        .store
        .get(&name)
        .map_err(super::resolve::store_err)?;
    let mut task = tokio::spawn(async move {
        let _writing = d.engine.images.gc_lock.read().await;
        let puller = Puller::new(
            client,
            d.engine.images.content.clone(),
            d.engine.images.snapshots.clone(),
            d.engine.images.store.clone(),
        );
        let result = puller.pull(&name, &opts).await;
        timer.finish();
        if let Ok(rec) = &result {
            pulled_event(&d, &rec.name, "pull");
            if old
                .as_ref()
                .is_some_and(|o| o.config_digest != rec.config_digest)
            {
                if let Err(e) = d.engine.images.keep_dangling(old.clone()) {
                    tracing::warn!(error = %e, "cannot keep the replaced image as dangling");
                }
            }
        }
        (result, old)
    });
    let finish = |msgs: Messages,
                  result: Result<berth_image::ImageRecord, PullError>,
                  old: Option<berth_image::ImageRecord>| async move {
        match result {
            Ok(rec) => {
                let digest = rec.index_digest.as_ref().unwrap_or(&rec.manifest_digest);
                msgs.status(&format!("Digest: {digest}")).await;
                let same = old.is_some_and(|o| o.manifest_digest == rec.manifest_digest);
                let what = if same {
                    "Image is up to date for"
                } else {
                    "Downloaded newer image for"
                };
                msgs.status(&format!("Status: {what} {}", familiar(&rec.name)))
                    .await;
            }
            Err(e) => msgs.error(&e.to_string()).await,
        }
    };
    tokio::select! {
        joined = &mut task => {
            let (result, old) = joined.map_err(|e| ApiError::Internal(format!("pull task: {e}")))?;
            if let Err(e) = &result {
                if !sent.load(Ordering::SeqCst) {
                    return Err(pull_error(e));
                }
            }
            tokio::spawn(finish(msgs, result, old));
        }
        _ = started.notified() => {
            tokio::spawn(async move {
                match task.await {
                    Ok((result, old)) => finish(msgs, result, old).await,
                    Err(e) => msgs.error(&format!("pull task: {e}")).await,
                }
            });
        }
    }
    Ok(reply)
}

/// Docker's `pull` (and `push`) event: the familiar reference as actor, its repository
/// as `name`.
pub fn pulled_event(daemon: &Daemon, name: &str, action: &str) {
    let actor = super::resolve::familiar(name);
    let repo = berth_image::Reference::parse(name)
        .map(|r| super::resolve::familiar(&format!("{}/{}", r.registry, r.repository)))
        .unwrap_or_else(|_| actor.clone());
    daemon.engine.events_log.image(action, &actor, Some(&repo));
}
