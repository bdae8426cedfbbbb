//! berthd: configuration, metadata store, wiring, Docker Engine API, metrics.
//!
//! Landed so far: the configuration file, the SQLite metadata store, the
//! one-daemon-per-root lock, the container engine (records, snapshots, one berth-shim
//! per container, restart policies, reconcile on start), the Docker Engine API's
//! system and container endpoints, and the CRI server's container engine ([`cri`]).

// `/info` builds one large JSON document with `json!`.
#![recursion_limit = "256"]

pub mod config;
pub mod container_spec;
pub mod cri;
pub mod docker_api;
pub mod engine;
pub mod images;
pub mod lock;
pub mod logs;
pub mod lookup;
pub mod restart_policy;
pub mod server;
pub mod store;

use std::path::Path;

use config::Config;
use docker_api::host::HostFacts;
use store::Store;

/// Errors starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Images(#[from] images::ImagesError),
}

/// Everything a request handler needs, shared by all of them.
pub struct Daemon {
    pub config: Config,
    pub store: Store,
    /// Content store, snapshots and image records.
    pub images: images::Images,
    /// Containers: their shims, lifecycle and state changes.
    pub engine: engine::Engine,
    pub host: HostFacts,
    /// A stable identity for this engine, kept in the root.
    pub id: String,
    _locks: [lock::RootLock; 2],
}

impl Daemon {
    /// Creates the root and state dirs, takes both locks (one daemon per root and per
    /// state dir) and opens the metadata database.
    pub fn start(config: Config) -> Result<Daemon, StartError> {
        for (dir, mode) in [(&config.root, 0o700), (&config.state, 0o711)] {
            create_dir(dir, mode)?;
        }
        let locks = [
            lock::RootLock::acquire(&config.root)?,
            lock::RootLock::acquire(&config.state)?,
        ];
        let store = Store::open(&config.database_path())?;
        let images = images::Images::open(&config.root)?;
        let id = engine_id(&config.root)?;
        let engine =
            engine::Engine::new(&config.root, &config.state).map_err(|source| StartError::Dir {
                path: config.root.join("containers"),
                source,
            })?;
        Ok(Daemon {
            images,
            engine,
            host: HostFacts::read(&config.root),
            config,
            store,
            id,
            _locks: locks,
        })
    }
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source| StartError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(err)
}

/// The engine id: random once, then read back from `<root>/engine-id`.
fn engine_id(root: &Path) -> Result<String, StartError> {
    let path = root.join("engine-id");
    let err = |source| StartError::Dir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut bytes = [0u8; 16];
    getrandom(&mut bytes).map_err(err)?;
    let id = hex_upper(&bytes);
    let tmp = root.join("engine-id.tmp");
    std::fs::write(&tmp, &id).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(id)
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
