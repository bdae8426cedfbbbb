//! One watcher per running container: waits for its exit through the shim, records
//! the exit code and time, releases the task and the shim, then applies `--rm` and
//! the restart policy.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_shim::exit_record::ExitRecord;

use super::record::Status;
use super::shim::{self, Shim};
use super::{blocking, get, lifecycle, oom, put, EngineError};
use crate::restart_policy::ExitFacts;
use crate::Engine;

/// Starts watching container `id` served by the shim at `address`.
pub fn spawn(engine: Arc<Engine>, id: String, address: String) {
    tokio::spawn(async move {
        if let Err(e) = watch(&engine, &id, address).await {
            tracing::warn!(id = %id, "watching the container: {e}");
        }
    });
}

fn rfc3339(nanos: i128) -> String {
    let at = if nanos > 0 {
        UNIX_EPOCH + Duration::from_nanos(nanos as u64)
    } else {
        SystemTime::now()
    };
    humantime::format_rfc3339_nanos(at).to_string()
}

async fn watch(engine: &Arc<Engine>, id: &str, address: String) -> Result<(), EngineError> {
    collect(engine, id, address).await?;
    after_exit(engine, id).await
}

/// After the exit is known (already exited, or a dead shim): records it now and
/// applies `--rm` and the restart policy in the background.
pub async fn collect_now(
    engine: &Arc<Engine>,
    id: &str,
    address: String,
) -> Result<(), EngineError> {
    collect(engine, id, address).await?;
    let (engine, id) = (Arc::clone(engine), id.to_string());
    tokio::spawn(async move {
        if let Err(e) = after_exit(&engine, &id).await {
            tracing::warn!(id = %id, "after the container's exit: {e}");
        }
    });
    Ok(())
}

/// Waits for the exit through the shim (or reads the dead shim's exit record),
/// releases the task and the shim, and records the exit.
async fn collect(engine: &Arc<Engine>, id: &str, address: String) -> Result<(), EngineError> {
    let group = get(engine, id)?.shim_group().to_string();
    let d = Arc::clone(engine);
    let (cid, addr) = (id.to_string(), address.clone());
    let waited = blocking(move || Ok(wait_shared(&d, &addr, &cid))).await?;
    let d = Arc::clone(engine);
    // Deleting the task may let the shim go (the last of its pod): not while another
    // container of the group is starting in it.
    let group_guard = engine.shim_group_lock(&group).await;
    let cid = id.to_string();
    let (code, at, oom_killed) = blocking(move || {
        let _group_guard = group_guard;
        let dir = d.dir(&cid);
        match waited {
            Ok((s, (code, at))) => {
                // Before the delete, which removes the cgroup.
                let oom_killed = oom::oom_killed(&dir);
                if let Err(e) = s.delete(&cid) {
                    tracing::warn!(id = %cid, "deleting the exited task: {e}");
                }
                s.shutdown(&cid);
                // The shim goes with its last task, and its connection with it.
                if !others_have_tasks(&d, &group, &cid) {
                    d.drop_watch_conn(&address, &s);
                }
                Ok((code as i64, at, oom_killed))
            }
            Err(e) => {
                // The shim is gone: its durable exit record says how the container ended.
                tracing::warn!(id = %cid, "lost the shim: {e}");
                // Or the shim lives on without the task: a stop or removal cut short
                // by a crash after it deleted the task. Let it go (a shim holding
                // other tasks stays), or nothing ever would.
                if let Ok(s) = Shim::connect(&address) {
                    s.shutdown(&cid);
                }
                shim::delete_dead(&d.shim_binary, &d.shim_address, &cid, &dir);
                match ExitRecord::read(&dir).ok().flatten() {
                    Some(r) => {
                        let at = r
                            .exited_at()
                            .duration_since(UNIX_EPOCH)
                            .map(|t| t.as_nanos() as i128)
                            .unwrap_or(0);
                        Ok((r.exit_status as i64, at, false))
                    }
                    None => Ok((255, 0, false)),
                }
            }
        }
    })
    .await?;

    // Volumes mounted for it that no other running container uses: unmounted before
    // the exit is recorded, so whoever waits for it finds them unmounted; and again
    // after, for users exiting together (each saw the other still running).
    let record = get(engine, id)?;
    let names: Vec<String> = record.volumes.iter().map(|v| v.name.clone()).collect();
    let unmount = |exited: Option<String>| {
        let (d, names) = (Arc::clone(engine), names.clone());
        blocking(move || {
            crate::volumes::unmount_unused(&d, &names, exited.as_deref());
            Ok(())
        })
    };
    unmount(Some(id.to_string())).await?;
    let mut record = record;
    if record.network_container.is_none() {
        let d = Arc::clone(engine);
        let mut detaching = record.clone();
        record = blocking(move || {
            if !crate::networks::attach::has_own_netns(&d, &detaching) {
                return Ok(detaching);
            }
            if let Err(e) = crate::networks::attach::teardown(&d, &mut detaching) {
                // Left in the CNI cache: the next start, the removal or berthd's
                // reconcile finishes it.
                tracing::warn!(id = %detaching.id, "detaching the exited container: {e}");
            }
            Ok(detaching)
        })
        .await?;
    }
    record.state.status = Status::Exited;
    record.state.exit_code = code;
    record.state.oom_killed = oom_killed;
    record.state.pid = 0;
    record.state.finished_at = rfc3339(at);
    // The record, then its events, then the waiters (a `stop` waiting for this exit
    // sends its `stop` after our `die`, as dockerd's order is).
    crate::put_unannounced(engine, &record)?;
    if oom_killed {
        engine
            .events_log
            .container(&record, "oom", std::iter::empty());
    }
    let exit_code = ("exitCode".to_string(), code.to_string());
    engine.events_log.container(&record, "die", [exit_code]);
    engine.notify();
    tracing::info!(id, code, "container exited");
    unmount(None).await?;
    Ok(())
}

/// Waits for container `id`'s exit on the watchers' shared connection to its shim. A
/// cached connection may be to a shim that has gone since (a pod's shim is started
/// anew at the same address): Wait is idempotent, so it is tried once more on a fresh
/// connection before the shim counts as lost.
fn wait_shared(
    engine: &super::Engine,
    address: &str,
    id: &str,
) -> Result<(Arc<Shim>, (u32, i128)), shim::ShimError> {
    let conn = engine.watch_conn(address)?;
    let first = match conn.wait(id) {
        Ok(r) => return Ok((conn, r)),
        Err(e) => e,
    };
    engine.drop_watch_conn(address, &conn);
    let fresh = engine.watch_conn(address).map_err(|_| first)?;
    match fresh.wait(id) {
        Ok(r) => Ok((fresh, r)),
        Err(e) => {
            engine.drop_watch_conn(address, &fresh);
            Err(e)
        }
    }
}

/// Whether another container of shim group `group` still has a task in its shim.
fn others_have_tasks(engine: &Engine, group: &str, id: &str) -> bool {
    match super::list(engine) {
        Ok(records) => records
            .iter()
            .any(|r| r.id != id && r.shim_group() == group && r.state.status.has_task()),
        // Unknown: keep the connection (a stale one is replaced on its first failure).
        Err(_) => true,
    }
}

/// `--rm` and restart policies, once the exit is recorded.
async fn after_exit(engine: &Arc<Engine>, id: &str) -> Result<(), EngineError> {
    let record = get(engine, id)?;
    if record.auto_remove {
        let _guard = engine.lock(id).await;
        // Docker's `--rm` takes the anonymous volumes along.
        return lifecycle::remove_locked_with_volumes(engine, id, true).await;
    }
    let ran_for = match (
        humantime::parse_rfc3339_weak(&record.state.started_at),
        humantime::parse_rfc3339_weak(&record.state.finished_at),
    ) {
        (Ok(s), Ok(f)) => f.duration_since(s).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let facts = ExitFacts {
        exit_code: record.state.exit_code as i32,
        stopped_by_user: record.state.stopped_by_user,
        restart_count: record.state.restart_count,
        ran_for,
    };
    let Some(delay) = record.restart_policy.next_start(facts) else {
        return Ok(());
    };
    tokio::time::sleep(delay).await;
    let _guard = engine.lock(id).await;
    let mut record = match get(engine, id) {
        Ok(r) => r,
        Err(EngineError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    if record.state.status != Status::Exited || record.state.stopped_by_user {
        return Ok(());
    }
    record.state.restart_count += 1;
    put(engine, &record)?;
    tracing::info!(
        id,
        count = record.state.restart_count,
        "restarting (restart policy)"
    );
    lifecycle::start_locked(engine, id).await.map(|_| ())
}
