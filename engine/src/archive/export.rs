//! `export` (the container's root filesystem as one tar, its volumes left out, as
//! dockerd does) and `changes` (`docker diff`: what the container's writable layer
//! added, changed and deleted).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use berth_snapshotter::changes::{Change, ChangeKind};

use super::{on_view, prepare, tar_out, ArchiveError};
use crate::{Engine, EngineError};

/// Streams the tar of the container's root filesystem into the writer `begin`
/// returns, once the filesystem is open (errors before that are the caller's to
/// answer; after it, they are logged).
pub async fn export<W, B>(
    engine: &Arc<Engine>,
    reference: &str,
    begin: B,
) -> Result<(), ArchiveError>
where
    W: Write + Send + 'static,
    B: FnOnce() -> W + Send + 'static,
{
    let mut p = prepare(engine, reference).await?;
    // The root filesystem only: volumes and binds are not part of an export.
    p.spec.binds.clear();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(on_view(p, move |view, _| {
        let out = begin();
        let _ = ready_tx.send(());
        tar_out::write_root(view, out).map_err(|e| ArchiveError::io("export", "/", e))
    }));
    match ready_rx.await {
        Ok(()) => {
            tokio::spawn(async move {
                if let Ok(Err(e)) = task.await {
                    tracing::warn!("export failed while streaming: {e}");
                }
            });
            Ok(())
        }
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Ok(()),
            Err(e) => Err(ArchiveError::Internal(format!("export task: {e}"))),
        },
    }
}

/// The container's changes, in Docker's order and kinds. Mount points the runtime
/// made in the writable layer (`/etc/hosts`, a volume's directory) are left out, as
/// dockerd keeps them in an init layer of their own.
pub async fn changes(engine: &Arc<Engine>, reference: &str) -> Result<Vec<Change>, EngineError> {
    let record = crate::find(engine, reference)?;
    let mounts = engine
        .images
        .snapshots
        .mounts(&record.snapshot)
        .map_err(EngineError::internal(format!("container {}", record.id)))?;
    let mut upper = None;
    let mut lowers = Vec::new();
    for m in &mounts {
        if m.kind == "bind" {
            upper = Some(PathBuf::from(&m.source));
        }
        for o in &m.options {
            if let Some(u) = o.strip_prefix("upperdir=") {
                upper = Some(PathBuf::from(u));
            }
            if let Some(l) = o.strip_prefix("lowerdir=") {
                lowers.extend(l.split(':').map(PathBuf::from));
            }
        }
    }
    let upper = upper.ok_or_else(|| {
        EngineError::Invalid(format!("container {}: no writable layer", record.id))
    })?;
    let spec = std::fs::read(engine.dir(&record.id).join("config.json")).unwrap_or_default();
    let spec: serde_json::Value = serde_json::from_slice(&spec).unwrap_or_default();
    let mount_points: Vec<String> = spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["destination"].as_str().map(str::to_string))
        .collect();
    crate::blocking(move || {
        let all = berth_snapshotter::changes::changes(&upper, &lowers).map_err(
            EngineError::internal(format!("reading {}", upper.display())),
        )?;
        Ok(all
            .into_iter()
            .filter(|c| !(c.kind == ChangeKind::Added && mount_points.contains(&c.path)))
            .collect())
    })
    .await
}
