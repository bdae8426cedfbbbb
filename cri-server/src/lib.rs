//! CRI v1 `RuntimeService` and `ImageService` for kubelet and crictl, served by berthd on
//! its unix socket.
//!
//! - [`Cri`] holds the CRI state (pod sandbox records, image machinery, CNI) and answers
//!   both services; [`Cri::serve`] serves them on a [`tokio::net::UnixListener`].
//! - Go gRPC clients (kubelet, crictl) send the socket path as HTTP/2 `:authority`, which
//!   the `h2` server rejects; every accepted connection goes through [`authority`]'s
//!   rewriter first (see [`conn::CriConnection`]).
//! - Pods have no pause image: their network, IPC and UTS namespaces are created and pinned
//!   under the state dir ([`sandbox`]); CNI attaches the network.
//! - Containers are run by berth's container engine ([`berth_engine::Engine`]), called
//!   directly from [`containers`]; without one, container RPCs answer `Unimplemented`
//!   saying so.
//!
//! One file per RPC (or per small group of read-only RPCs) under [`runtime`],
//! [`containers`], [`images`] and [`sandbox`]; errors are mapped to gRPC codes once, in
//! [`error`].

pub mod authority;
pub mod conn;
pub mod containers;
pub mod error;
pub mod images;
pub mod metrics;
pub mod runtime;
pub mod sandbox;
mod server;
pub mod streaming;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_cni::CniOptions;
use berth_engine::pod::Pods;
use berth_engine::Engine;
use berth_image::{ImageStore, RegistryConfig};
use berth_snapshotter::{ContentStore, Snapshotter};
pub use error::CriError;
pub use streaming::{StreamingConfig, StreamingTls};

/// The runtime name reported by `Version`.
pub const RUNTIME_NAME: &str = "berth";
/// The CRI API version served.
pub const CRI_API_VERSION: &str = "v1";

/// Where the CRI keeps its state and how it reaches registries and networks.
#[derive(Debug, Clone)]
pub struct CriConfig {
    /// Persistent root (berthd's `--root`): the sandbox database lives in `<root>/cri`.
    pub root: PathBuf,
    /// Runtime state (berthd's `--state`): pinned namespaces and pod files under `<state>/cri`.
    pub state: PathBuf,
    pub cni: CniOptions,
    pub registry: RegistryConfig,
    /// The executable run as `<it> pod-init` to be PID 1 of pods that share one PID
    /// namespace (berthd's own, see [`berth_engine::pod::init`]); `None` gives each
    /// container of such a pod its own.
    pub pod_init: Option<PathBuf>,
    /// The runtime handler names (Kubernetes RuntimeClass handlers) pods may ask for
    /// besides the default (`""`); none: `berth` alone.
    pub runtime_handlers: Vec<String>,
    /// The streaming server Exec, Attach and PortForward hand URLs to.
    pub streaming: StreamingConfig,
}

/// The image machinery the daemon opened once under its root.
#[derive(Clone)]
pub struct ImageParts {
    /// The root the parts live under (image filesystem usage is measured there).
    pub root: PathBuf,
    pub content: ContentStore,
    pub snapshots: Arc<Snapshotter>,
    pub store: ImageStore,
}

/// The CRI server's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Cri {
    inner: Arc<Inner>,
}

struct Inner {
    config: CriConfig,
    images: ImageParts,
    /// The engine side of pods: namespaces, init, network, files.
    pods: Arc<Pods>,
    sandboxes: sandbox::store::SandboxStore,
    /// The pod CIDR kubelet last gave through UpdateRuntimeConfig.
    pod_cidr: Mutex<String>,
    /// berth's container engine; `None`: container RPCs answer `Unimplemented`.
    engine: Option<Arc<Engine>>,
    /// Serialises sandbox creation and removal (name reservation, namespace pins).
    sandbox_lock: tokio::sync::Mutex<()>,
    /// Exec, Attach and PortForward's server, bound at open.
    streaming: streaming::StreamServer,
}

impl Cri {
    /// Opens the CRI state under the configured root and state dirs.
    pub fn open(
        config: CriConfig,
        images: ImageParts,
        engine: Option<Arc<Engine>>,
    ) -> Result<Cri, CriError> {
        let sandboxes = sandbox::store::SandboxStore::open(&config.root.join("cri"))?;
        let pods = Arc::new(Pods::new(
            config.state.join("cri"),
            config.cni.clone(),
            config.pod_init.clone(),
        ));
        let streaming = streaming::StreamServer::bind(&config.streaming)?;
        Ok(Cri {
            inner: Arc::new(Inner {
                config,
                images,
                pods,
                sandboxes,
                pod_cidr: Mutex::new(String::new()),
                engine,
                sandbox_lock: tokio::sync::Mutex::new(()),
                streaming,
            }),
        })
    }

    /// The named runtime handlers pods may ask for (the default, `""`, aside).
    pub fn runtime_handlers(&self) -> Vec<String> {
        if self.inner.config.runtime_handlers.is_empty() {
            vec!["berth".to_string()]
        } else {
            self.inner.config.runtime_handlers.clone()
        }
    }

    pub fn config(&self) -> &CriConfig {
        &self.inner.config
    }

    pub(crate) fn streaming(&self) -> &streaming::StreamServer {
        &self.inner.streaming
    }

    /// The directory holding pinned namespaces and per-pod files.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.inner.pods.state_dir().to_path_buf()
    }
}
