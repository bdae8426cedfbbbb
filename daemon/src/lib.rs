//! berthd: configuration, wiring, the Docker Engine API, metrics.
//!
//! The configuration file, the one-daemon-per-root lock, the Docker Engine API's
//! system, image and container endpoints, and the CRI server's settings ([`cri`]).
//! Containers, images and the metadata store are berth-engine's
//! ([`berth_engine::Engine`]), opened here and shared with the CRI server.

// `/info` builds one large JSON document with `json!`.
#![recursion_limit = "256"]

pub mod config;
pub mod cri;
pub mod docker_api;
pub mod lock;
pub mod logs;
pub mod metrics;
pub mod registry;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use berth_engine::{Engine, EngineConfig};
use config::Config;
use docker_api::host::HostFacts;

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
    Engine(#[from] berth_engine::OpenError),
    #[error("making the default bridge network ([networks] in the config): {0}")]
    Networks(String),
}

/// Everything a request handler needs, shared by all of them.
pub struct Daemon {
    pub config: Config,
    /// Containers, images and the metadata store; shared with the CRI server.
    pub engine: Arc<Engine>,
    pub host: HostFacts,
    /// A stable identity for this engine, kept in the root.
    pub id: String,
    /// What the Docker API keeps of each exec beside the engine's record.
    pub execs: docker_api::exec::ExecTable,
    /// What the Docker API records for Prometheus.
    pub api_metrics: metrics::ApiMetrics,
    _locks: [lock::RootLock; 2],
}

impl Daemon {
    /// Creates the root and state dirs, takes both locks (one daemon per root and per
    /// state dir) and opens the engine (the metadata database, images, bundles).
    pub fn start(config: Config) -> Result<Daemon, StartError> {
        for (dir, mode) in [(&config.root, 0o700), (&config.state, 0o711)] {
            create_dir(dir, mode)?;
        }
        let locks = [
            lock::RootLock::acquire(&config.root)?,
            lock::RootLock::acquire(&config.state)?,
        ];
        let engine = Engine::open(EngineConfig {
            root: config.root.clone(),
            state: config.state.clone(),
            runtimes: config.runtime_handlers(),
        })?;
        let default_bridge = berth_engine::networks::DefaultBridge {
            bridge: config.networks.default_bridge.clone(),
            subnet: config.networks.default_subnet.clone(),
        };
        berth_engine::networks::ensure_default(&engine, &default_bridge)
            .map_err(|e| StartError::Networks(e.to_string()))?;
        let upstreams = config
            .networks
            .dns_upstreams()
            .map_err(StartError::Networks)?;
        if !upstreams.is_empty() {
            engine.dns.set_upstreams(upstreams);
        }
        let id = engine_id(&config.root)?;
        Ok(Daemon {
            engine: Arc::new(engine),
            host: HostFacts::read(&config.root),
            config,
            id,
            execs: Default::default(),
            api_metrics: Default::default(),
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
