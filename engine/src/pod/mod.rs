//! The engine side of pods: what a pod is on the host, set up and taken down as one.
//!
//! A pod has no pause process: its network, IPC and UTS namespaces are made and pinned
//! on files under the pods' state dir (`namespaces`), a pod sharing one PID namespace
//! gets berth's own init as PID 1 (`init`), CNI attaches the network, and the pod dir
//! holds its /etc/hostname, /etc/resolv.conf, /etc/hosts and /dev/shm (`files`). The
//! CRI translates its PodSandboxConfig into [`PodConfig`] and keeps its own records
//! (cri-server/src/sandbox/).

pub mod files;
pub mod init;
pub mod namespaces;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_cni::{Cni, CniOptions, Netns, PodNetwork, PortMapping};

use crate::EngineError;

/// `map_err(io_err("create", &dir))`: an I/O failure naming its step and path.
pub(crate) fn io_err(
    step: &'static str,
    path: impl AsRef<Path>,
) -> impl FnOnce(std::io::Error) -> EngineError {
    EngineError::internal(format!("{step} {}", path.as_ref().display()))
}

/// The pod's DNS settings for its resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// A pod as the engine sets it up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodConfig {
    /// Who the pod is, for the network plugins (CNI_ARGS `K8S_POD_*`).
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// Its own UTS namespace's hostname (the host's own on the host's network).
    pub hostname: String,
    pub host_network: bool,
    pub host_ipc: bool,
    /// One PID namespace for the pod, with berth's init as its PID 1.
    pub shared_pid: bool,
    /// `None` or all empty: the host's resolv.conf.
    pub dns: Option<Dns>,
    /// Host ports to map to the pod (CNI's portmap capability).
    pub port_mappings: Vec<PortMapping>,
}

/// What a pod got on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSetup {
    pub dir: PathBuf,
    /// Pinned network namespace; `None` on the host's network.
    pub netns: Option<PathBuf>,
    /// Pinned IPC namespace; `None` for the host's IPC.
    pub ipc_ns: Option<PathBuf>,
    /// Pinned UTS namespace; `None` on the host's network.
    pub uts_ns: Option<PathBuf>,
    pub ips: Vec<String>,
}

/// Where pods live on the host and what sets them up: their state dir, the CNI and
/// the executable whose `pod-init` mode is a pod's PID 1.
pub struct Pods {
    state: PathBuf,
    cni: Arc<Cni>,
    init_program: Option<PathBuf>,
}

impl Pods {
    /// Pods under `state` (pins in `pid/`, `ipc/`, `uts/`, `netns/`, pod dirs in
    /// `pods/`); `init_program` run as `<it> pod-init` (none: pods that share a PID
    /// namespace give each container its own).
    pub fn new(state: PathBuf, cni: CniOptions, init_program: Option<PathBuf>) -> Pods {
        Pods {
            state,
            cni: Arc::new(Cni::new(cni)),
            init_program,
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    pub fn cni(&self) -> &Arc<Cni> {
        &self.cni
    }

    /// Where a PID-sharing pod's PID namespace is pinned.
    pub fn pid_pin(&self, id: &str) -> PathBuf {
        self.state.join("pid").join(id)
    }

    fn netns_dir(&self) -> PathBuf {
        self.state.join("netns")
    }

    /// The pod's own dir (its files and /dev/shm).
    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.state.join("pods").join(id)
    }

    /// The pid of the pod's init while it lives.
    pub fn init_pid(&self, id: &str, dir: &Path) -> Option<i32> {
        init::live_pid(&self.pid_pin(id), dir)
    }

    /// What CNI is told about the pod.
    pub fn network(&self, id: &str, config: &PodConfig, netns: PathBuf) -> PodNetwork {
        PodNetwork {
            id: id.to_string(),
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            uid: config.uid.clone(),
            netns,
            port_mappings: config.port_mappings.clone(),
            dns: config.dns.as_ref().map(|d| berth_cni::DnsConfig {
                servers: d.servers.clone(),
                searches: d.searches.clone(),
                options: d.options.clone(),
            }),
            ..Default::default()
        }
    }

    /// Sets the pod up: namespaces, init, network, files. On failure nothing stays.
    pub async fn setup(
        self: &Arc<Self>,
        id: &str,
        config: &PodConfig,
    ) -> Result<PodSetup, EngineError> {
        let resolv = files::resolv_conf(config.dns.as_ref())?;
        let dir = self.pod_dir(id);
        std::fs::create_dir_all(&dir).map_err(io_err("create pod dir", &dir))?;
        let mut rollback = Rollback {
            pods: Arc::clone(self),
            id: id.to_string(),
            dir: Some(dir.clone()),
            netns: None,
            network: None,
            pins: Vec::new(),
            init: None,
        };

        let (ipc_ns, uts_ns) = namespaces::pin_ipc_uts(
            &self.state,
            id,
            !config.host_ipc,
            (!config.host_network).then_some(config.hostname.as_str()),
        )?;
        rollback.pins.extend(ipc_ns.iter().cloned());
        rollback.pins.extend(uts_ns.iter().cloned());

        if let (true, Some(program)) = (config.shared_pid, self.init_program.clone()) {
            let pin = self.pid_pin(id);
            let (p, d) = (pin.clone(), dir.clone());
            crate::blocking(move || init::start(&program, &p, &d)).await?;
            rollback.init = Some(pin);
        }

        let mut ips = Vec::new();
        let mut netns_path = None;
        if !config.host_network {
            let ns = Netns::create(&self.netns_dir(), id)
                .map_err(EngineError::internal("pod namespace"))?;
            netns_path = Some(ns.path().to_path_buf());
            let pod = self.network(id, config, ns.path().to_path_buf());
            rollback.netns = Some(ns);
            let (cni, setup_pod) = (Arc::clone(&self.cni), pod.clone());
            let attached = crate::blocking(move || {
                cni.setup(&setup_pod)
                    .map_err(EngineError::internal("pod network"))
            })
            .await?;
            rollback.network = Some(pod);
            ips = attached.ips.iter().map(|ip| ip.to_string()).collect();
        }

        let hostname = &config.hostname;
        let hosts = if config.host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| files::hosts(hostname, &[]))
        } else {
            files::hosts(hostname, &ips)
        };
        files::write(&dir, files::HOSTNAME, &format!("{hostname}\n"))?;
        files::write(&dir, files::RESOLV_CONF, &resolv)?;
        files::write(&dir, files::HOSTS, &hosts)?;
        if !config.host_ipc {
            files::mount_shm(&dir)?;
        }
        rollback.disarm();
        Ok(PodSetup {
            dir,
            netns: netns_path,
            ipc_ns,
            uts_ns,
            ips,
        })
    }

    /// Stops the pod's init (and whatever is left in its PID namespace) and releases
    /// its network. Safe to repeat.
    pub async fn release(
        &self,
        id: &str,
        config: &PodConfig,
        dir: &Path,
        netns: Option<&Path>,
    ) -> Result<(), EngineError> {
        init::stop(&self.pid_pin(id), dir);
        if let Some(netns) = netns {
            let pod = self.network(id, config, netns.to_path_buf());
            let cni = Arc::clone(&self.cni);
            crate::blocking(move || {
                cni.teardown(&pod)
                    .map_err(EngineError::internal("pod network"))
            })
            .await?;
            Netns::at(netns.to_path_buf())
                .remove()
                .map_err(EngineError::internal("pod namespace"))?;
        }
        Ok(())
    }

    /// Removes what stays of a released pod: its namespace pins, /dev/shm and dir. Goes
    /// on after an error so that one stuck piece does not strand the rest; reports all.
    pub fn remove(&self, id: &str, setup: &PodSetup) -> Result<(), EngineError> {
        let mut errors = Vec::new();
        let pid_pin = self.pid_pin(id);
        for pin in setup
            .ipc_ns
            .iter()
            .chain(&setup.uts_ns)
            .chain(Some(&pid_pin))
        {
            if let Err(e) = namespaces::remove_pin(pin) {
                errors.push(e.to_string());
            }
        }
        if let Err(e) = files::unmount_shm(&setup.dir) {
            errors.push(e.to_string());
        }
        match std::fs::remove_dir_all(&setup.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("remove {}: {e}", setup.dir.display())),
        }
        if errors.is_empty() {
            return Ok(());
        }
        Err(EngineError::broken(
            format!("removing pod sandbox {id}"),
            errors.join("; "),
        ))
    }
}

/// What a setup has made so far; dropping it undoes everything not disarmed.
struct Rollback {
    pods: Arc<Pods>,
    id: String,
    dir: Option<PathBuf>,
    netns: Option<Netns>,
    network: Option<PodNetwork>,
    pins: Vec<PathBuf>,
    /// The pod init's PID namespace pin, the init to kill first.
    init: Option<PathBuf>,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        let id = &self.id;
        if let Some(pod) = self.network.take() {
            if let Err(e) = self.pods.cni.teardown(&pod) {
                tracing::warn!(sandbox = %id, error = %e, "rollback: CNI DEL failed");
            }
        }
        if let Some(ns) = self.netns.take() {
            if let Err(e) = ns.remove() {
                tracing::warn!(sandbox = %id, error = %e, "rollback: netns removal failed");
            }
        }
        if let (Some(pin), Some(dir)) = (self.init.take(), self.dir.as_ref()) {
            init::stop(&pin, dir);
            if let Err(e) = namespaces::remove_pin(&pin) {
                tracing::warn!(sandbox = %id, error = %e, "rollback: PID namespace pin removal failed");
            }
        }
        for pin in self.pins.drain(..) {
            if let Err(e) = namespaces::remove_pin(&pin) {
                tracing::warn!(sandbox = %id, error = %e, "rollback: namespace pin removal failed");
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = files::unmount_shm(&dir) {
                tracing::warn!(sandbox = %id, error = %e, "rollback: /dev/shm unmount failed");
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Rollback {
    fn disarm(mut self) {
        self.dir = None;
        self.netns = None;
        self.network = None;
        self.pins.clear();
        self.init = None;
    }
}
