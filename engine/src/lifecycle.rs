//! start, stop, kill, restart, remove, pause, top: each serialised per container and
//! recorded in the store before it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::record::{ContainerRecord, Status};
use super::shim::{self, Shim};
use super::{blocking, get, now_rfc3339, put, watch, EngineError, StateConflict};
use crate::store::Kind;
use crate::Engine;

/// What `start` did.
#[derive(Debug, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    AlreadyRunning,
}

/// The external runtime the container's handler names, if not the built-in one.
fn external_runtime(
    engine: &Engine,
    record: &ContainerRecord,
) -> Result<Option<shim::ExternalRuntime>, EngineError> {
    let (name, binary) = engine
        .runtimes
        .resolve(&record.runtime)
        .map_err(EngineError::Invalid)?;
    Ok(binary.map(|binary| shim::ExternalRuntime {
        binary,
        root: engine.runtimes.root(&name),
    }))
}

/// Starts a created or exited container: a new shim, a task created from the bundle
/// with the snapshot as its root, stdout/stderr into the container's log.
pub async fn start(engine: &Arc<Engine>, id: &str) -> Result<StartOutcome, EngineError> {
    let _guard = engine.lock(id).await;
    start_locked(engine, id).await
}

pub async fn start_locked(engine: &Arc<Engine>, id: &str) -> Result<StartOutcome, EngineError> {
    let begun = std::time::Instant::now();
    let mut record = get(engine, id)?;
    match record.state.status {
        Status::Running | Status::Restarting => return Ok(StartOutcome::AlreadyRunning),
        Status::Paused => return Err(EngineError::state(id, StateConflict::Paused)),
        Status::Removing | Status::Dead => {
            return Err(EngineError::state(id, StateConflict::MarkedForRemoval))
        }
        Status::Created | Status::Exited => {}
    }
    let d = Arc::clone(engine);
    let (cid, snapshot, tty) = (id.to_string(), record.snapshot.clone(), record.tty);
    let stdin_wanted = record
        .open_stdin
        .then_some(record.stdin_once && !record.tty);
    let log = record.log.shim_target(&engine.log_of(&record));
    let runtime = external_runtime(engine, &record)?;
    // Bind sources that do not exist are made at each start, as dockerd makes `-v`'s.
    let binds = match &record.bind_sources {
        Some(sources) => sources.clone(),
        None => legacy_bind_sources(&record),
    };
    if record.network_container.is_none() {
        // (setup does nothing for host and none modes.)
        let d = Arc::clone(engine);
        let mut attaching = record.clone();
        record = blocking(move || {
            crate::networks::attach::setup(&d, &mut attaching)?;
            Ok(attaching)
        })
        .await?;
    }
    if let Some(target) = record.network_container.clone() {
        crate::networks::attach::join_container(engine, &record.id, &target)?;
    }
    // The shim may be shared (a pod's): no other container of its group may start
    // it or let it go meanwhile.
    let group_guard = engine.shim_group_lock(record.shim_group()).await;
    // Volumes with the local driver's options are mounted before the runtime binds
    // their data directories, and stay in use until the container runs or fails.
    let volume_names: Vec<String> = record.volumes.iter().map(|v| v.name.clone()).collect();
    let mounted = {
        let (d, names) = (Arc::clone(engine), volume_names.clone());
        blocking(move || crate::volumes::mount_for_start(&d, &names)).await
    };
    let mounted = match mounted {
        Ok(m) => m,
        Err(e) => {
            record.state.error = e.to_string();
            let _ = put(engine, &record);
            return Err(e);
        }
    };
    let started = blocking(move || {
        let _group_guard = group_guard;
        crate::container_spec::create_bind_sources(&binds)
            .map_err(EngineError::internal("creating bind mount sources"))?;
        let engine = &d;
        let dir = engine.dir(&cid);
        let mounts = d
            .images
            .snapshots
            .mounts(&snapshot)
            .map_err(EngineError::internal("the container's root filesystem"))?;
        let _ = std::fs::remove_file(dir.join(berth_shim::exit_record::FILE_NAME));
        let stdin = match stdin_wanted {
            Some(close_at_eof) => Some(crate::process_io::stdin_target(&dir, close_at_eof)?),
            None => None,
        };
        let address = shim::launch(&engine.shim_binary, &engine.shim_address, &cid, &dir)?;
        let client = Shim::connect(&address)?;
        let run = || -> Result<(u32, String), EngineError> {
            client.create(
                &cid,
                &dir,
                &mounts,
                &log,
                stdin.as_deref(),
                tty,
                runtime.as_ref(),
            )?;
            // Taken before the start: a process that exits at once must not look
            // as if it finished before it started.
            let started_at = now_rfc3339();
            Ok((client.start(&cid)?, started_at))
        };
        match run() {
            Ok((pid, started_at)) => Ok((address, pid, started_at)),
            Err(e) => {
                let _ = client.delete(&cid);
                client.shutdown(&cid);
                Err(e)
            }
        }
    })
    .await;
    let (address, pid, started_at) = match started {
        Ok(s) => s,
        Err(e) => {
            crate::volumes::release(engine, &mounted);
            let d = Arc::clone(engine);
            let _ = blocking(move || {
                crate::volumes::unmount_unused(&d, &mounted, None);
                Ok(())
            })
            .await;
            if record.network_container.is_none() {
                let d = Arc::clone(engine);
                let mut detaching = record.clone();
                record = blocking(move || {
                    if !crate::networks::attach::has_own_netns(&d, &detaching) {
                        return Ok(detaching);
                    }
                    if let Err(e) = crate::networks::attach::teardown(&d, &mut detaching) {
                        tracing::warn!("undoing a failed start's network attachment: {e}");
                    }
                    Ok(detaching)
                })
                .await?;
            }
            record.state.error = e.to_string();
            if record.state.status == Status::Exited || !record.state.started_at.is_empty() {
                record.state.exit_code = 128;
            }
            let invoke = exec_failure_code(&record.state.error, &record.path);
            if let Some(code) = invoke {
                record.state.exit_code = code;
            }
            let _ = put(engine, &record);
            return Err(match invoke {
                // The command is wrong, not berthd: the client's request is invalid.
                Some(_) => EngineError::Invalid(record.state.error),
                None => e,
            });
        }
    };
    record.state.status = Status::Running;
    record.state.pid = pid;
    record.state.started_at = started_at;
    record.state.finished_at = String::new();
    record.state.exit_code = 0;
    record.state.error = String::new();
    record.state.oom_killed = false;
    record.state.stopped_by_user = false;
    crate::health::reset(&mut record);
    let stored = put(engine, &record);
    // The record says it runs now: its volumes are in use by it.
    crate::volumes::release(engine, &mounted);
    stored?;
    engine
        .metrics
        .start_latency
        .observe(begun.elapsed().as_secs_f64());
    engine
        .events_log
        .container(&record, "start", std::iter::empty());
    tracing::info!(id, pid, "container started");
    watch::spawn(Arc::clone(engine), id.to_string(), address);
    crate::health::spawn(Arc::clone(engine), &record);
    Ok(StartOutcome::Started)
}

/// docker's exit code for a command that could not be run: 127 when it does not exist,
/// 126 when it cannot be invoked; read from the runtime's error as dockerd does.
pub(crate) fn exec_failure_code(error: &str, command: &str) -> Option<i64> {
    let error = error.to_lowercase();
    let missing = ["executable file not found", "no such file or directory"];
    if error.contains(&command.to_lowercase()) && missing.iter().any(|m| error.contains(m)) {
        Some(127)
    } else if error.contains("permission denied") {
        Some(126)
    } else {
        None
    }
}

/// Parses a signal as Docker accepts it: `SIGKILL`, `KILL`, `9`.
pub fn parse_signal(s: &str) -> Result<Signal, EngineError> {
    let bad = || EngineError::Invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

pub fn shim_of(engine: &Engine, id: &str) -> Result<Shim, EngineError> {
    let address = std::fs::read_to_string(engine.dir(id).join("address"))
        .map_err(EngineError::internal(format!("the shim address of {id}")))?;
    Ok(Shim::connect(address.trim())?)
}

/// Sends a signal to the container's init (`all`: to every process).
async fn signal(engine: &Arc<Engine>, id: &str, sig: Signal, all: bool) -> Result<(), EngineError> {
    let d = Arc::clone(engine);
    let id = id.to_string();
    blocking(move || Ok(shim_of(&d, &id)?.kill(&id, sig as u32, all)?)).await
}

/// `kill`: the container must be running.
pub async fn kill(engine: &Arc<Engine>, reference: &str, sig: &str) -> Result<(), EngineError> {
    let record = super::find(engine, reference)?;
    let sig = parse_signal(if sig.is_empty() { "SIGKILL" } else { sig })?;
    let _guard = engine.lock(&record.id).await;
    let mut record = get(engine, &record.id)?;
    if !record.state.status.has_task() {
        return Err(EngineError::state(record.id, StateConflict::NotRunning));
    }
    if matches!(sig, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT) {
        record.state.stopped_by_user = true;
        put(engine, &record)?;
    }
    signal(engine, &record.id, sig, false).await?;
    kill_event(engine, &record, sig);
    Ok(())
}

/// Docker's `kill` event, with the signal's number.
fn kill_event(engine: &Engine, record: &ContainerRecord, sig: Signal) {
    let signal = ("signal".to_string(), (sig as i32).to_string());
    engine.events_log.container(record, "kill", [signal]);
}

/// Waits until the container has no task, up to `limit`; true when it has none.
pub async fn wait_exit(
    engine: &Engine,
    id: &str,
    limit: Option<Duration>,
) -> Result<bool, EngineError> {
    let deadline = limit.map(|l| Instant::now() + l);
    loop {
        let notified = engine.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match engine.store.get::<ContainerRecord>(Kind::Container, id)? {
            None => return Ok(true),
            Some(r) if !r.state.status.has_task() && r.state.status != Status::Restarting => {
                return Ok(true)
            }
            Some(_) => {}
        }
        // Poll as well: a waiter woken by nothing still checks twice a second.
        let tick = Duration::from_millis(500);
        let wait = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(false);
                }
                (d - now).min(tick)
            }
            None => tick,
        };
        let _ = tokio::time::timeout(wait, notified).await;
    }
}

/// `stop`: the stop signal, then SIGKILL after `timeout` seconds. Returns false when
/// the container was not running (Docker answers 304).
pub async fn stop(
    engine: &Arc<Engine>,
    reference: &str,
    timeout: Option<i64>,
) -> Result<bool, EngineError> {
    let record = super::find(engine, reference)?;
    let _guard = engine.lock(&record.id).await;
    stop_locked(engine, &record.id, timeout).await
}

pub async fn stop_locked(
    engine: &Arc<Engine>,
    id: &str,
    timeout: Option<i64>,
) -> Result<bool, EngineError> {
    let mut record = get(engine, id)?;
    if !record.state.status.has_task() {
        return Ok(false);
    }
    record.state.stopped_by_user = true;
    put(engine, &record)?;
    if record.state.status == Status::Paused {
        let d = Arc::clone(engine);
        let cid = id.to_string();
        let _ = blocking(move || Ok(shim_of(&d, &cid)?.resume(&cid)?)).await;
    }
    let timeout = timeout.unwrap_or(10);
    if timeout != 0 {
        let sig = parse_signal(&record.stop_signal).unwrap_or(Signal::SIGTERM);
        match signal(engine, id, sig, false).await {
            Ok(()) => kill_event(engine, &record, sig),
            Err(e) => tracing::debug!(id, "stop signal: {e}"),
        }
        let limit = (timeout > 0).then(|| Duration::from_secs(timeout as u64));
        if wait_exit(engine, id, limit).await? {
            engine
                .events_log
                .container(&record, "stop", std::iter::empty());
            return Ok(true);
        }
    }
    match signal(engine, id, Signal::SIGKILL, true).await {
        Ok(()) => kill_event(engine, &record, Signal::SIGKILL),
        Err(e) => tracing::debug!(id, "SIGKILL: {e}"),
    }
    if !wait_exit(engine, id, Some(Duration::from_secs(30))).await? {
        return Err(EngineError::broken(
            format!("stopping container {id}"),
            "it did not exit after SIGKILL",
        ));
    }
    engine
        .events_log
        .container(&record, "stop", std::iter::empty());
    Ok(true)
}

/// `restart`: stop (if running), then start.
pub async fn restart(
    engine: &Arc<Engine>,
    reference: &str,
    timeout: Option<i64>,
) -> Result<(), EngineError> {
    let record = super::find(engine, reference)?;
    let _guard = engine.lock(&record.id).await;
    stop_locked(engine, &record.id, timeout).await?;
    start_locked(engine, &record.id).await?;
    engine
        .events_log
        .container(&record, "restart", std::iter::empty());
    Ok(())
}

/// `rm`: refuses a running container unless forced; removes the task, the snapshot,
/// the bundle and the record.
pub async fn remove(engine: &Arc<Engine>, reference: &str, force: bool) -> Result<(), EngineError> {
    let record = super::find(engine, reference)?;
    let _guard = engine.lock(&record.id).await;
    remove_locked(engine, &record.id, force).await
}

/// `remove`, then the anonymous volumes the container had (`docker rm -v`); a named
/// volume stays, and so does one another container still uses.
pub async fn remove_with_volumes(
    engine: &Arc<Engine>,
    reference: &str,
    force: bool,
) -> Result<(), EngineError> {
    let record = super::find(engine, reference)?;
    let _guard = engine.lock(&record.id).await;
    remove_locked_with_volumes(engine, &record.id, force).await
}

/// `remove_with_volumes` with the container's lock held.
pub async fn remove_locked_with_volumes(
    engine: &Arc<Engine>,
    id: &str,
    force: bool,
) -> Result<(), EngineError> {
    let anonymous: Vec<String> = get(engine, id)?
        .volumes
        .into_iter()
        .filter(|v| v.anonymous)
        .map(|v| v.name)
        .collect();
    remove_locked(engine, id, force).await?;
    if !anonymous.is_empty() {
        let d = Arc::clone(engine);
        blocking(move || {
            crate::volumes::detach(&d, &anonymous);
            Ok(())
        })
        .await?;
    }
    Ok(())
}

pub async fn remove_locked(engine: &Arc<Engine>, id: &str, force: bool) -> Result<(), EngineError> {
    let record = get(engine, id)?;
    if record.state.status.has_task() {
        if !force {
            let what = if record.state.status == Status::Paused {
                "paused"
            } else {
                "running"
            };
            return Err(EngineError::state(id, StateConflict::StillActive(what)));
        }
        stop_locked(engine, id, Some(0)).await?;
    }
    let address = std::fs::read_to_string(engine.dir(id).join("address")).ok();
    let d = Arc::clone(engine);
    let (cid, snapshot) = (id.to_string(), record.snapshot.clone());
    let mut detached = record.clone();
    blocking(move || {
        // Nothing of its networks stays (a stop already detached it; this is for a
        // crash between).
        if crate::networks::attach::has_own_netns(&d, &detached) {
            crate::networks::attach::teardown(&d, &mut detached)?;
        }
        let dir = d.dir(&cid);
        // A rootfs still mounted (a shim that died before deleting) goes first.
        let rootfs = dir.join("rootfs");
        while berth_snapshotter::mount::unmount(&rootfs).is_ok() {}
        match d.images.snapshots.remove(&snapshot) {
            Ok(()) => {}
            Err(e) if !d.images.snapshots.exists(&snapshot) => {
                tracing::debug!("snapshot {snapshot} already gone: {e}")
            }
            Err(e) => {
                return Err(EngineError::internal("removing the container's snapshot")(
                    e,
                ))
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(EngineError::internal(format!("removing {}", dir.display()))(e));
            }
        }
        d.store.delete(Kind::Container, &cid)?;
        Ok(())
    })
    .await?;
    engine.forget_lock(id);
    engine.forget_execs(id);
    let group = record.shim_group();
    if super::list(engine)?.iter().all(|r| r.shim_group() != group) {
        engine.forget_shim_group_lock(group);
        if let Some(address) = address {
            engine.forget_watch_conn(address.trim());
        }
    }
    engine.notify();
    engine.emit(&record, super::ContainerEventKind::Deleted);
    engine
        .events_log
        .container(&record, "destroy", std::iter::empty());
    tracing::info!(id, "container removed");
    Ok(())
}

/// `pause` (freezer) / `unpause`.
pub async fn pause(engine: &Arc<Engine>, reference: &str) -> Result<(), EngineError> {
    set_paused(engine, reference, true).await
}

pub async fn unpause(engine: &Arc<Engine>, reference: &str) -> Result<(), EngineError> {
    set_paused(engine, reference, false).await
}

async fn set_paused(
    engine: &Arc<Engine>,
    reference: &str,
    paused: bool,
) -> Result<(), EngineError> {
    let record = super::find(engine, reference)?;
    let _guard = engine.lock(&record.id).await;
    let mut record = get(engine, &record.id)?;
    match (record.state.status, paused) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (Status::Paused, true) => {
            return Err(EngineError::state(record.id, StateConflict::AlreadyPaused))
        }
        (Status::Running, false) => {
            return Err(EngineError::state(record.id, StateConflict::NotPaused))
        }
        _ => return Err(EngineError::state(record.id, StateConflict::NotRunning)),
    }
    let d = Arc::clone(engine);
    let id = record.id.clone();
    blocking(move || {
        let shim = shim_of(&d, &id)?;
        if paused {
            Ok(shim.pause(&id)?)
        } else {
            Ok(shim.resume(&id)?)
        }
    })
    .await?;
    record.state.status = if paused {
        Status::Paused
    } else {
        Status::Running
    };
    put(engine, &record)?;
    let action = if paused { "pause" } else { "unpause" };
    engine
        .events_log
        .container(&record, action, std::iter::empty());
    Ok(())
}

/// `top`: the container's processes, as `ps -ef` columns from /proc.
pub async fn top(engine: &Arc<Engine>, reference: &str) -> Result<Vec<u32>, EngineError> {
    let record = super::find(engine, reference)?;
    if !record.state.status.has_task() {
        return Err(EngineError::state(record.id, StateConflict::NotRunning));
    }
    let d = Arc::clone(engine);
    let id = record.id.clone();
    blocking(move || Ok(shim_of(&d, &id)?.pids(&id)?)).await
}

/// The `-v` bind sources of a record written before records kept them: its request is
/// then a Docker create body (CRI records keep a CRI config, without binds).
fn legacy_bind_sources(record: &ContainerRecord) -> Vec<String> {
    if record.cri.is_some() {
        return Vec::new();
    }
    let binds: Vec<String> =
        serde_json::from_value(record.request["HostConfig"]["Binds"].clone()).unwrap_or_default();
    binds
        .iter()
        .filter_map(|b| b.split(':').next())
        .filter(|s| s.starts_with('/'))
        .map(crate::container_spec::clean_path)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{exec_failure_code, legacy_bind_sources};
    use crate::record::{ContainerRecord, CriMeta};

    /// A record from before `bind_sources`: its `-v` sources come from its Docker
    /// body; a CRI record's request has none.
    #[test]
    fn old_records_give_their_bind_sources_from_the_docker_body() -> serde_json::Result<()> {
        let mut record: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "c", "name": "n", "created": "", "image": "busybox", "image_id": "",
            "snapshot": "s", "parent_snapshot": null,
            "request": {"HostConfig": {"Binds": ["/a/../b:/x:ro", "vol:/y", "/c:/z"]}},
            "path": "sh", "args": [], "env": [], "working_dir": "/", "user": "",
            "labels": {}, "tty": false, "stop_signal": "SIGTERM", "auto_remove": false,
            "restart_policy": {}, "state": {"status": "created", "pid": 0, "exit_code": 0,
                "started_at": "", "finished_at": "", "error": "",
                "stopped_by_user": false, "restart_count": 0}
        }))?;
        assert_eq!(record.bind_sources, None);
        assert_eq!(legacy_bind_sources(&record), ["/b", "/c"]);
        record.cri = Some(CriMeta::default());
        assert!(legacy_bind_sources(&record).is_empty());
        Ok(())
    }

    #[test]
    fn commands_that_cannot_run_get_dockers_exit_codes() {
        let missing = r#"container init failed: exec: "nope": executable file not found in $PATH"#;
        assert_eq!(exec_failure_code(missing, "nope"), Some(127));
        let stat = r#"exec: "/nope": stat /nope: no such file or directory"#;
        assert_eq!(exec_failure_code(stat, "/nope"), Some(127));
        let denied = r#"exec: "/etc/passwd": permission denied"#;
        assert_eq!(exec_failure_code(denied, "/etc/passwd"), Some(126));
        // A missing file that is not the command (a bind mount source) is berthd's
        // error, as for dockerd.
        let mount = "mounting /data: no such file or directory";
        assert_eq!(exec_failure_code(mount, "sh"), None);
    }
}
