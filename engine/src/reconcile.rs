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
        } else {
            if matches!(record.state.status, Status::Created | Status::Exited) {
                let d = Arc::clone(engine);
                let (i, own_shim) = (id.clone(), record.cri.is_none());
                blocking(move || {
                    end_stray_task(&d, &i, own_shim);
                    Ok(())
                })
                .await?;
            }
            if record.state.status != Status::Exited
                || !record
                    .restart_policy
                    .restarts_on_daemon_start(record.state.stopped_by_user)
            {
                continue;
            }
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

/// A start cut short by the crash (berthd died after the shim made or started the
/// task, before the record said `running`): the record says created or exited, but
/// its shim still holds a task — a process in the container's cgroup and namespaces
/// that no watcher, stop or removal would ever reach. It is killed and deleted, and
/// the shim let go when it holds nothing else (a pod's shim stays for its others).
/// `own_shim`: the shim is the container's alone (not a CRI pod's).
fn end_stray_task(engine: &Engine, id: &str, own_shim: bool) {
    let Ok(address) = std::fs::read_to_string(engine.dir(id).join("address")) else {
        return;
    };
    let Ok(shim) = Shim::connect(address.trim()) else {
        return;
    };
    if shim.state(id).is_err() {
        // No such task: an exited container's idle shim, or a launch cut short
        // before Create.
        if own_shim {
            shim.shutdown(id);
        }
        return;
    }
    tracing::info!(id, "ending a task whose start berthd did not finish");
    if let Err(e) = shim.kill(id, nix::sys::signal::Signal::SIGKILL as u32, true) {
        tracing::debug!(id, "killing the stray task: {e}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while shim.state(id).is_ok_and(|(s, _)| s != "stopped") && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Err(e) = shim.delete(id) {
        tracing::warn!(id, "deleting a task whose start berthd did not finish: {e}");
    }
    shim.shutdown(id);
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
