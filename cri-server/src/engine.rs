//! The boundary to berthd's container engine.
//!
//! The CRI server owns pod sandboxes (namespaces, network, pod files) and images; the
//! containers inside a pod are created and supervised by the daemon's engine (snapshots,
//! OCI spec, the pod's shim). berthd passes its engine to [`crate::Cri::open`]; the CRI
//! server calls it with the request and the sandbox the container joins.

use std::path::PathBuf;
use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::CriError;

/// What a container needs from its pod sandbox.
#[derive(Debug, Clone)]
pub struct SandboxContext {
    pub id: String,
    /// The pod's runtime handler (RuntimeClass); empty: the default.
    pub runtime_handler: String,
    pub config: cri::PodSandboxConfig,
    /// Pinned network namespace; `None` for host network.
    pub netns: Option<PathBuf>,
    /// Pinned IPC namespace; `None` for host IPC.
    pub ipc_ns: Option<PathBuf>,
    /// Pinned UTS namespace; `None` for host network (the host's hostname).
    pub uts_ns: Option<PathBuf>,
    /// The pod's shared PID namespace (its init's), when the pod asked for one.
    pub pid_ns: Option<PathBuf>,
    /// Files to bind into containers at /etc/hostname, /etc/resolv.conf, /etc/hosts.
    pub hostname_file: PathBuf,
    pub resolv_conf: PathBuf,
    pub hosts_file: PathBuf,
    /// The pod's shared /dev/shm (a tmpfs); `None` for host IPC.
    pub shm: Option<PathBuf>,
}

/// Figures read from one cgroup (v1 or v2) for ListPodSandboxMetrics and the pod's
/// process count; read by berth-runtime's one cgroup reader.
pub use berth_runtime::CgroupSample;

/// A change in a CRI container's lifecycle, as the engine recorded it.
pub use berth_engine::{ContainerEvent, ContainerEventKind};

/// Container lifecycle as berthd's engine implements it. Every method is keyed by
/// container id; `stop` and `remove` of an unknown id succeed (kubelet retries them).
#[tonic::async_trait]
pub trait ContainerEngine: Send + Sync + 'static {
    async fn create(
        &self,
        sandbox: &SandboxContext,
        request: cri::CreateContainerRequest,
    ) -> Result<String, CriError>;
    async fn start(&self, id: &str) -> Result<(), CriError>;
    /// SIGTERM (or the image's stop signal), then SIGKILL after `timeout`.
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), CriError>;
    async fn remove(&self, id: &str) -> Result<(), CriError>;
    async fn status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::ContainerStatusResponse, CriError>;
    async fn list(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>, CriError>;
    async fn exec_sync(
        &self,
        request: cri::ExecSyncRequest,
    ) -> Result<cri::ExecSyncResponse, CriError>;
    /// New cgroup limits for a container, running or not.
    async fn update_resources(
        &self,
        id: &str,
        resources: cri::LinuxContainerResources,
    ) -> Result<(), CriError>;
    /// CPU, memory and writable-layer usage of one container.
    async fn stats(&self, id: &str) -> Result<cri::ContainerStats, CriError>;
    async fn list_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::ContainerStats>, CriError>;
    /// Makes the shim reopen the container's log at its path (kubelet renamed it away
    /// to rotate it); returns once the new file exists.
    async fn reopen_log(&self, id: &str) -> Result<(), CriError>;
    /// Ids of the containers of one sandbox, for StopPodSandbox/RemovePodSandbox.
    async fn sandbox_containers(&self, sandbox_id: &str) -> Result<Vec<String>, CriError>;
    /// CPU and memory of a cgroup (a pod's cgroup parent, absolute in the hierarchy);
    /// `None` when it does not exist.
    async fn cgroup_stats(&self, cgroup: &str) -> Option<(cri::CpuUsage, cri::MemoryUsage)>;
    /// The cgroup of a container with a live task (absolute in the hierarchy); `None`
    /// when it has no task or is unknown.
    async fn container_cgroup(&self, id: &str) -> Option<String>;
    /// Everything berth reads from a cgroup (absolute in the hierarchy) for metrics;
    /// `None` when no hierarchy has it.
    async fn cgroup_sample(&self, cgroup: &str) -> Option<CgroupSample>;
    /// Every lifecycle change of a CRI container from now on (GetContainerEvents).
    /// The same state may be reported twice in a row; readers drop repeats.
    fn events(&self) -> tokio::sync::broadcast::Receiver<ContainerEvent>;
}

/// The answer when no engine is wired in.
pub(crate) fn missing(rpc: &str) -> CriError {
    CriError::Unimplemented(format!(
        "{rpc}: containers are run by berthd's container engine, which this CRI server was started without"
    ))
}
