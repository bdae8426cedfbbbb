//! berth's container engine: containers as records in the store, an overlay snapshot
//! as their root filesystem, a bundle directory, and one berth-shim each that outlives
//! berthd. Every change of state lands in the store before it is reported.
//!
//! Both front doors call it: berthd's Docker Engine API and the CRI server. It knows
//! neither's wire types: each translates its create request into
//! [`config::ContainerConfig`].
//!
//! Layout: `<root>/containers/<id>/` is the bundle (`config.json`, `rootfs/`), and
//! holds the CRI-format log (`container.log`), the shim's `address` and its durable
//! exit record.

pub mod archive;
pub mod config;
pub mod container_spec;
mod create;
mod error;
pub mod events;
pub mod health;
mod image;
pub mod images;
pub mod init_binary;
mod lifecycle;
pub mod logs;
pub mod lookup;
pub mod metrics;
pub mod names;
pub mod networks;
mod oom;
pub mod pod;
mod probe;
pub mod process_io;
mod reconcile;
pub mod record;
pub mod restart_policy;
pub mod runtimes;
pub mod shim;
mod shim_conn;
pub mod stats;
pub mod store;
pub mod update;
pub mod volumes;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use create::{create, NewContainer, SpecPatch};
pub use error::{EngineError, Object, StateConflict};
pub use image::{config as image_config, find as find_image, normalise as normalise_image};
pub use lifecycle::{
    kill, parse_signal, pause, remove, restart, start, stop, top, unpause, wait_exit, StartOutcome,
};
pub use lifecycle::{
    remove_locked, remove_locked_with_volumes, remove_with_volumes, shim_of, start_locked,
    stop_locked,
};
pub use oom::cgroup_path;
pub use process_io::{
    attach, exec_create, exec_forget, exec_inspect, exec_kill, exec_resize, exec_start, exec_wait,
    resize, AttachOptions, ExecConfig, ExecInfo, OutputReader, ProcessIo, StdinWriter,
};
pub use reconcile::reconcile;
pub use record::{ContainerRecord, CriMeta, RunState, Status};
pub use runtimes::RuntimeHandlers;
pub use update::{update, Update};

use crate::store::{Kind, Store};

/// What the engine is opened with (berthd's `--root`, `--state` and `[runtimes]`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state: content, snapshots, bundles, the metadata database.
    pub root: PathBuf,
    /// Runtime state: shim sockets, runtime roots of external runtimes.
    pub state: PathBuf,
    pub runtimes: RuntimeHandlers,
}

/// Errors opening the engine.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("creating {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Images(#[from] images::ImagesError),
}

/// A change in a CRI container's lifecycle, as the engine recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// A lifecycle change of a container that belongs to a pod (one with [`CriMeta`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container_id: String,
    pub sandbox_id: String,
    pub kind: ContainerEventKind,
    /// Unix nanoseconds.
    pub at: i64,
}

/// The engine: the metadata store, the image machinery, the runtime handlers, paths,
/// the shim binary, and a signal for state changes. Shared by both front doors.
pub struct Engine {
    pub store: Store,
    /// Content store, snapshots and image records.
    pub images: images::Images,
    pub runtimes: RuntimeHandlers,
    root: PathBuf,
    /// Runtime state (`--state`).
    state: PathBuf,
    containers: PathBuf,
    shim_binary: PathBuf,
    /// berth's container init, installed under the root (`init_binary`).
    init_binary: PathBuf,
    /// The identity passed to shims as `-address` (names their sockets).
    shim_address: PathBuf,
    changed: tokio::sync::Notify,
    /// Lifecycle changes of CRI containers, for GetContainerEvents.
    events: tokio::sync::broadcast::Sender<ContainerEvent>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One connection per shim address for the watchers' blocking Waits: the
    /// containers of a pod share their shim, and every connection costs the shim a
    /// handful of threads.
    watch_conns: Mutex<HashMap<String, Arc<shim::Shim>>>,
    /// Names taken by creates that have not stored their record yet.
    pub names: names::NameClaims,
    /// Execs, until their container is removed.
    execs: process_io::Execs,
    /// Every container's lifecycle and every image operation, for `/events`.
    pub events_log: events::EventLog,
    /// The latest health results of running checks, by container: (the run's
    /// `started_at`, its health). The record is written only when the status changes;
    /// reads overlay these.
    health_now: Mutex<HashMap<String, (String, health::Health)>>,
    /// What the engine records for Prometheus (`metrics.rs`).
    pub metrics: Arc<metrics::EngineMetrics>,
    /// Serialises volume creates, removals and prunes (`volumes/`).
    volumes_lock: Mutex<()>,
    /// Volumes attached by creates in progress (how many each): in use, though no
    /// record names them yet.
    volumes_pending: Mutex<HashMap<String, usize>>,
    /// Serialises network creates, removals and prunes (`networks/`).
    networks_lock: Mutex<()>,
    /// The embedded DNS servers of user networks (`networks/dns/`).
    pub dns: networks::dns::Dns,
    /// The last script `networks::firewall` applied (empty: no table), to skip a
    /// sync that would change nothing.
    firewall_applied: Mutex<Option<String>>,
}

impl Engine {
    /// Opens the metadata database `<root>/berth.db`, the image machinery under the
    /// root, and `<root>/containers`.
    pub fn open(config: EngineConfig) -> Result<Engine, OpenError> {
        let store = Store::open(&config.root.join("berth.db"))?;
        let images = images::Images::open(&config.root)?;
        let (root, state) = (config.root, config.state);
        let containers = root.join("containers");
        std::fs::create_dir_all(&containers).map_err(|source| OpenError::Dir {
            path: containers.clone(),
            source,
        })?;
        let init_binary = init_binary::install(&root).map_err(|source| OpenError::Dir {
            path: root.join("berth-init"),
            source,
        })?;
        let shim_address = state.join("shim");
        Ok(Engine {
            store,
            images,
            runtimes: config.runtimes,
            root,
            state,
            containers,
            shim_binary: shim_binary(),
            init_binary,
            shim_address,
            changed: tokio::sync::Notify::new(),
            events: tokio::sync::broadcast::channel(1024).0,
            locks: Mutex::new(HashMap::new()),
            watch_conns: Mutex::new(HashMap::new()),
            names: names::NameClaims::default(),
            execs: process_io::Execs::default(),
            events_log: events::EventLog::default(),
            health_now: Mutex::new(HashMap::new()),
            metrics: Arc::new(metrics::EngineMetrics::new()),
            volumes_lock: Mutex::new(()),
            volumes_pending: Mutex::new(HashMap::new()),
            networks_lock: Mutex::new(()),
            dns: Default::default(),
            firewall_applied: Mutex::new(None),
        })
    }

    /// The persistent root the engine keeps its state under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The runtime state dir (`--state`).
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// berth's container init on the host.
    pub fn init_binary(&self) -> &Path {
        &self.init_binary
    }

    /// The bundle directory of container `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.containers.join(id)
    }

    /// The container's CRI-format log file.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("container.log")
    }

    /// Where the shim writes the container's log: the CRI log path when the record
    /// names one, else `<id>-json.log` in the bundle for a json-file log (where
    /// dockerd keeps it in its container directory), else the bundle's `container.log`.
    pub fn log_of(&self, record: &ContainerRecord) -> PathBuf {
        if let Some(path) = &record.log_path {
            return path.clone();
        }
        match record.log.kind {
            logs::settings::LogKind::JsonFile => {
                self.dir(&record.id).join(format!("{}-json.log", record.id))
            }
            logs::settings::LogKind::None => PathBuf::from("/dev/null"),
            logs::settings::LogKind::Cri => self.log_path(&record.id),
        }
    }

    /// Serialises lifecycle operations on one container.
    pub async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(id.to_string()).or_default())
        };
        m.lock_owned().await
    }

    /// Serialises launching a shim and letting it go among the containers it serves
    /// (a pod's shim exits when its last task is deleted; a container of the pod
    /// starting meanwhile must not connect to it as it goes).
    pub(crate) async fn shim_group_lock(&self, group: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.lock(&format!("shim-group:{group}")).await
    }

    /// The watchers' shared connection to the shim at `address`.
    pub(crate) fn watch_conn(&self, address: &str) -> Result<Arc<shim::Shim>, shim::ShimError> {
        let mut map = self.watch_conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = map.get(address) {
            return Ok(Arc::clone(conn));
        }
        let conn = Arc::new(shim::Shim::connect(address)?);
        map.insert(address.to_string(), Arc::clone(&conn));
        Ok(conn)
    }

    /// The watchers' connections by shim address, as they are now.
    pub(crate) fn watch_conns_snapshot(&self) -> Vec<(String, Arc<shim::Shim>)> {
        let map = self.watch_conns.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(a, c)| (a.clone(), Arc::clone(c)))
            .collect()
    }

    /// Drops the watchers' connection to `address` (its shim exits or died), if it is
    /// still `conn`.
    pub(crate) fn drop_watch_conn(&self, address: &str, conn: &Arc<shim::Shim>) {
        let mut map = self.watch_conns.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(address).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            map.remove(address);
        }
    }

    /// Forgets the watchers' connection to `address`, whichever it is (the last
    /// container its shim served is gone).
    fn forget_watch_conn(&self, address: &str) {
        let mut map = self.watch_conns.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(address);
    }

    fn forget_execs(&self, container_id: &str) {
        self.execs.forget_container(container_id);
    }

    fn forget_shim_group_lock(&self, group: &str) {
        self.forget_lock(&format!("shim-group:{group}"));
    }

    fn forget_lock(&self, id: &str) {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// Held while volumes are created or removed.
    fn networks_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.networks_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn volumes_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.volumes_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn volumes_pending_add(&self, name: &str) {
        let mut map = self
            .volumes_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry(name.to_string()).or_default() += 1;
    }

    fn volumes_pending_remove(&self, name: &str) {
        let mut map = self
            .volumes_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                map.remove(name);
            }
        }
    }

    fn volumes_pending_names(&self) -> Vec<String> {
        let map = self
            .volumes_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }

    /// Wakes everyone waiting for a state change.
    fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// The latest health results of `record`'s run, if its check has newer ones than
    /// the record.
    fn overlay_health(&self, record: &mut ContainerRecord) {
        let map = self.health_now.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((started_at, health)) = map.get(&record.id) {
            if *started_at == record.state.started_at && record.state.health.is_some() {
                record.state.health = Some(health.clone());
            }
        }
    }

    pub(crate) fn set_health_now(
        &self,
        id: &str,
        started_at: &str,
        health: Option<health::Health>,
    ) {
        let mut map = self.health_now.lock().unwrap_or_else(|p| p.into_inner());
        match health {
            Some(h) => {
                map.insert(id.to_string(), (started_at.to_string(), h));
            }
            // Only this run's entry: a later run of the container may have its own.
            None => {
                if map.get(id).is_some_and(|(s, _)| s == started_at) {
                    map.remove(id);
                }
            }
        }
    }

    /// Readers of CRI containers' lifecycle changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    /// Reports a CRI container's lifecycle change (a container the Docker API made has
    /// no CRI event). Nobody listening is fine.
    fn emit(&self, record: &ContainerRecord, kind: ContainerEventKind) {
        if let Some(meta) = &record.cri {
            let _ = self.events.send(ContainerEvent {
                container_id: record.id.clone(),
                sandbox_id: meta.sandbox_id.clone(),
                kind,
                at: unix_nanos(),
            });
        }
    }
}

pub(crate) fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The lifecycle event a record in `status` stands for, if any.
fn event_kind(status: Status) -> Option<ContainerEventKind> {
    match status {
        Status::Created => Some(ContainerEventKind::Created),
        Status::Running => Some(ContainerEventKind::Started),
        Status::Exited | Status::Dead => Some(ContainerEventKind::Stopped),
        Status::Paused | Status::Restarting | Status::Removing => None,
    }
}

/// berth-shim next to berthd's own executable, else from `PATH`.
fn shim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_SHIM_BINARY") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("berth-shim")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("berth-shim"))
}

/// Reads a container record by exact id.
pub fn get(engine: &Engine, id: &str) -> Result<ContainerRecord, EngineError> {
    let mut record = engine
        .store
        .get::<ContainerRecord>(Kind::Container, id)?
        .ok_or_else(|| EngineError::container_not_found(id))?;
    engine.overlay_health(&mut record);
    Ok(record)
}

/// Resolves an id, name or unique id prefix to a record.
pub fn find(engine: &Engine, reference: &str) -> Result<ContainerRecord, EngineError> {
    let id = crate::lookup::resolve(&engine.store, Kind::Container, reference)?;
    get(engine, &id)
}

/// Every container record.
pub fn list(engine: &Engine) -> Result<Vec<ContainerRecord>, EngineError> {
    Ok(engine
        .store
        .list::<ContainerRecord>(Kind::Container)?
        .into_iter()
        .map(|(_, _, mut r)| {
            engine.overlay_health(&mut r);
            r
        })
        .collect())
}

pub fn put(engine: &Engine, record: &ContainerRecord) -> Result<(), EngineError> {
    put_unannounced(engine, record)?;
    engine.notify();
    Ok(())
}

/// [`put`] without waking the tasks waiting for a record to change: for a writer that
/// has more to do first (the exit watcher sends `die` before a `stop` waiting for the
/// exit may send `stop`), and then calls `engine.notify()`.
pub(crate) fn put_unannounced(
    engine: &Engine,
    record: &ContainerRecord,
) -> Result<(), EngineError> {
    engine
        .store
        .put(Kind::Container, &record.id, Some(&record.name), record)?;
    if let Some(kind) = event_kind(record.state.status) {
        engine.emit(record, kind);
    }
    Ok(())
}

/// Now, as Docker writes times (RFC 3339 with nanoseconds, UTC).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(EngineError::internal("a blocking task"))?
}
