//! On berthd's start: reconnect to every live shim, learn the exits that happened
//! while berthd was down, remove leftovers of half-done creates, and start the
//! containers whose restart policy says so.

use std::collections::HashSet;
use std::sync::Arc;

use super::record::Status;
use super::shim::Shim;
use super::{blocking, lifecycle, list, watch, EngineError};
use crate::Engine;

/// Brings the engine in line with the records. Errors about one container are logged;
/// the others go on.
pub async fn reconcile(engine: &Arc<Engine>) -> Result<(), EngineError> {
    let records = list(engine)?;
    let known: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
    // Containers that may still be running: their attachments stay.
    let live: HashSet<String> = records
        .iter()
        .filter(|r| r.state.status.has_task() || r.state.status == Status::Restarting)
        .map(|r| r.id.clone())
        .collect();
    let d = Arc::clone(engine);
    blocking(move || {
        remove_leftovers(&d, &known);
        crate::networks::attach::reconcile(&d, &live);
        Ok(())
    })
    .await?;
    for record in records {
        let id = record.id.clone();
        if record.state.status.has_task() || record.state.status == Status::Restarting {
            let address = std::fs::read_to_string(engine.dir(&id).join("address"))
                .unwrap_or_default()
                .trim()
                .to_string();
            let state = {
                let (a, i) = (address.clone(), id.clone());
                blocking(move || Ok(Shim::connect(&a).and_then(|s| s.state(&i)).ok())).await?
            };
            match state {
                Some((status, _)) if status != "stopped" => {
                    tracing::info!(id = %id, "reconnected to the container's shim");
                    watch::spawn(Arc::clone(engine), id, address);
                    // The checks go on where they were (status and streak kept).
                    crate::health::spawn(Arc::clone(engine), &record);
                }
                other => {
                    // Exited while berthd was down: Wait answers at once on a live shim;
                    // a dead shim left its exit record. Recorded before berthd serves.
                    if other.is_none() {
                        tracing::info!(id = %id, "the container's shim is gone; reading its exit record");
                    }
                    if let Err(e) = watch::collect_now(engine, &id, address).await {
                        tracing::warn!(id = %id, "learning the container's exit: {e}");
                    }
                }
            }
        } else if record.state.status == Status::Exited
            && record
                .restart_policy
                .restarts_on_daemon_start(record.state.stopped_by_user)
        {
            if let Err(e) = lifecycle::start(engine, &id).await {
                tracing::warn!(id = %id, "restarting on engine start: {e}");
            }
        }
    }
    // Volume mounts left by a berthd that stopped between a mount and its undoing.
    let d = Arc::clone(engine);
    blocking(move || {
        let filter = crate::volumes::VolumeFilter::default();
        let names: Vec<String> = crate::volumes::list(&d, &filter)?
            .into_iter()
            .map(|v| v.record.name)
            .collect();
        crate::volumes::unmount_unused(&d, &names, None);
        Ok(())
    })
    .await?;
    Ok(())
}

/// Container directories and snapshots no record owns: a create cut short by a crash.
fn remove_leftovers(engine: &Engine, known: &HashSet<String>) {
    let dir = &engine.containers;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                let path = e.path();
                while berth_snapshotter::mount::unmount(&path.join("rootfs")).is_ok() {}
                tracing::info!(path = %path.display(), "removing a half-created container");
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
    for snap in engine.images.snapshots.list() {
        if let Some(id) = snap.key.strip_prefix("container-") {
            if !known.contains(id) {
                tracing::info!(snapshot = %snap.key, "removing a leftover container snapshot");
                let _ = engine.images.snapshots.remove(&snap.key);
            }
        }
    }
}
