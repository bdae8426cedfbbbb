//! Pod sandboxes as the CRI sees them: the PodSandboxConfig translated into the
//! engine's [`PodConfig`] (the engine sets pods up, `engine/src/pod/`), durable records
//! of the CRI's own. One file per RPC.

mod hostname;
pub mod list;
pub mod remove;
pub mod run;
pub mod status;
pub mod stop;
pub mod store;

use std::path::PathBuf;

use berth_engine::pod::{files, Dns, PodConfig, PodSetup};
use k8s_cri::v1 as cri;

use crate::{Cri, CriError};
pub use hostname::pod_hostname;
use store::SandboxRecord;

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

impl Cri {
    /// The sandbox whose id is (or starts with) `id`.
    pub(crate) fn sandbox(&self, id: &str) -> Result<SandboxRecord, CriError> {
        self.inner
            .sandboxes
            .find(id)?
            .ok_or_else(|| CriError::NotFound {
                what: "pod sandbox",
                id: id.to_string(),
            })
    }

    pub(crate) fn sandbox_context(&self, r: &SandboxRecord) -> SandboxContext {
        SandboxContext {
            id: r.id.clone(),
            runtime_handler: r.runtime_handler.clone(),
            config: r.config.clone(),
            netns: r.netns.clone(),
            ipc_ns: r.ipc_ns.clone(),
            uts_ns: r.uts_ns.clone(),
            hostname_file: r.dir.join(files::HOSTNAME),
            resolv_conf: r.dir.join(files::RESOLV_CONF),
            hosts_file: r.dir.join(files::HOSTS),
            pid_ns: Some(self.pid_pin(&r.id)).filter(|p| p.exists()),
            shm: r
                .ipc_ns
                .as_ref()
                .map(|_| r.dir.join(files::SHM))
                .filter(|p| p.is_dir()),
        }
    }

    /// Where a PID-sharing pod's PID namespace is pinned.
    pub(crate) fn pid_pin(&self, id: &str) -> PathBuf {
        self.inner.pods.pid_pin(id)
    }
}

/// What the engine made for the pod, as its record keeps it.
pub(crate) fn pod_setup(r: &SandboxRecord) -> PodSetup {
    PodSetup {
        dir: r.dir.clone(),
        netns: r.netns.clone(),
        ipc_ns: r.ipc_ns.clone(),
        uts_ns: r.uts_ns.clone(),
        ips: r.ips.clone(),
    }
}

/// Namespace options of a pod (NODE means the host's namespace).
pub(crate) fn namespace_options(config: &cri::PodSandboxConfig) -> cri::NamespaceOption {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

pub(crate) fn is_node(mode: i32) -> bool {
    mode == cri::NamespaceMode::Node as i32
}

/// The pod as the engine sets it up: the CRI config translated once. `hostname` is
/// the pod's (see [`pod_hostname`]; the network alone does not need it).
pub(crate) fn pod_config(config: &cri::PodSandboxConfig, hostname: String) -> PodConfig {
    let meta = config.metadata.clone().unwrap_or_default();
    let ns = namespace_options(config);
    let port_mappings = config
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| berth_cni::PortMapping {
            host_port: p.host_port as u16,
            container_port: p.container_port as u16,
            protocol: match cri::Protocol::try_from(p.protocol) {
                Ok(cri::Protocol::Udp) => "udp",
                Ok(cri::Protocol::Sctp) => "sctp",
                _ => "tcp",
            }
            .into(),
            host_ip: p.host_ip.clone(),
        })
        .collect();
    let dns = config.dns_config.as_ref().map(|d| Dns {
        servers: d.servers.clone(),
        searches: d.searches.clone(),
        options: d.options.clone(),
    });
    PodConfig {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        hostname,
        host_network: is_node(ns.network),
        host_ipc: is_node(ns.ipc),
        // POD (CRI's default; kubelet says CONTAINER unless shareProcessNamespace)
        // gives the pod one PID namespace with berth's init as PID 1.
        shared_pid: ns.pid == cri::NamespaceMode::Pod as i32,
        dns,
        port_mappings,
    }
}
