//! A container's OCI runtime spec from berth's container config and its image's
//! config, built the way Docker builds it: process merge, user lookup in the image,
//! default mounts, capabilities, masked paths, device rules and resource limits.

pub mod blkio;
pub(crate) mod caps;
mod defaults;
pub mod devices;
pub mod host_limits;
mod mounts;
pub mod ports;
mod process;
mod request;
mod resources;
pub mod rlimits;
mod seccomp;
pub mod seccomp_profile;
pub(crate) mod user;

use std::path::Path;

use oci_spec::runtime::{Linux, LinuxNamespace, LinuxNamespaceType, Process, Root, Spec};

pub use caps::bounding_set;
pub use mounts::{bind_sources, clean_path, create_bind_sources, oci_mount, user_mount};
pub use process::config_env;
pub use request::ImageDefaults;

use crate::config::{ContainerConfig, NetworkMode};
pub use user::{resolve as resolve_user, ExecUser};

/// Why a container's spec cannot be built; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("No command specified")]
    NoCommand,
    #[error("{0}")]
    Hostname(String),
    #[error("the working directory {0:?} is invalid: it needs to be an absolute path")]
    RelativeWorkdir(String),
    #[error("{0}")]
    User(String),
    #[error("{0}")]
    Mount(String),
    #[error("{0}")]
    Caps(String),
    #[error("{0}")]
    Resources(String),
    #[error("{0}")]
    Device(String),
    #[error("{0}")]
    Ulimit(String),
    #[error("invalid network mode {0:?}")]
    NetworkMode(String),
    #[error(
        "publishing ports ({0}) needs a bridge network (the default one or a user network), not --network none, host or container:"
    )]
    Ports(String),
    #[error("invalid exposed port {0:?}: expected port[/tcp|udp|sctp], one port per entry")]
    ExposedPort(String),
    #[error("invalid --security-opt {0:?}: {1}")]
    SecurityOpt(String, String),
    /// oci-spec's builders refused a value (their only check is for unset required
    /// fields, which berth always sets).
    #[error("building the OCI spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// What the daemon knows about the container besides the request.
pub struct SpecInputs<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub image: &'a ImageDefaults,
    /// The mounted root filesystem (users are looked up in it).
    pub rootfs: &'a Path,
    pub cgroups_path: String,
    /// Capabilities berth holds (`bounding_set()`), the ceiling for every container.
    pub held_caps: &'a [&'static str],
    /// berth's container init on the host, bound into containers that ask for one.
    pub init_binary: &'a Path,
}

/// The container as the steps see it: the inputs, and what several steps need that is
/// worked out once (the hostname, the process, the user, the capabilities).
pub struct Container<'a> {
    pub inputs: &'a SpecInputs<'a>,
    pub hostname: String,
    pub args: Vec<String>,
    pub cwd: String,
    pub user: ExecUser,
    /// `CAP_…` names, in the order Docker lists them.
    pub caps: Vec<String>,
}

impl<'a> Container<'a> {
    fn resolve(inputs: &'a SpecInputs<'a>) -> Result<Container<'a>, SpecError> {
        let config = inputs.config;
        let hostname = if config.hostname.is_empty() && config.network.mode == NetworkMode::Host {
            // Docker's choice: a container on the host's network is named as the host.
            nix::unistd::gethostname()
                .map_err(|e| SpecError::Hostname(format!("reading the host's hostname: {e}")))?
                .to_string_lossy()
                .into_owned()
        } else if config.hostname.is_empty() {
            inputs.id.chars().take(12).collect()
        } else {
            config.hostname.clone()
        };
        let args = process::args(&config.process, inputs.image)?;
        let cwd = process::cwd(&config.process, inputs.image)?;
        let user_spec = if config.process.user.is_empty() {
            &inputs.image.user
        } else {
            &config.process.user
        };
        let mut user = user::resolve(inputs.rootfs, user_spec)?;
        user.additional_gids.extend(user::additional_groups(
            inputs.rootfs,
            &config.process.additional_groups,
        )?);
        let security = &config.security;
        let caps = caps::container_caps(
            security.privileged,
            &security.cap_add,
            &security.cap_drop,
            inputs.held_caps,
        )?;
        Ok(Container {
            inputs,
            hostname,
            args,
            cwd,
            user,
            caps,
        })
    }

    pub fn config(&self) -> &ContainerConfig {
        self.inputs.config
    }
}

/// One step of the spec: changes `spec` for what `container` asks. Each lives in the
/// module that owns its topic, as containerd's `SpecOpts` do.
pub type Step = fn(&mut Spec, &Container<'_>) -> Result<(), SpecError>;

/// The steps, in order: later steps see (and may replace) what earlier ones set.
const STEPS: [Step; 14] = [
    with_root_and_hostname,
    process::with_process,
    rlimits::with_rlimits,
    caps::with_capabilities,
    defaults::with_default_mounts,
    mounts::with_user_mounts,
    process::with_init,
    with_namespaces,
    with_cgroups_path,
    defaults::with_masked_paths,
    seccomp::with_security_opts,
    resources::with_resources,
    devices::with_devices,
    with_sysctls,
];

/// Builds `config.json` for the container.
pub fn build(inputs: &SpecInputs<'_>) -> Result<Spec, SpecError> {
    let container = Container::resolve(inputs)?;
    let mut spec = base();
    for step in STEPS {
        step(&mut spec, &container)?;
    }
    Ok(spec)
}

/// An empty OCI 1.0.2 spec with a `process` and `linux` for the steps to fill.
/// (`Spec::default()` is not empty: it carries oci-spec's own example container.)
fn base() -> Spec {
    let mut spec = Spec::default();
    spec.set_version("1.0.2".into());
    spec.set_process(Some(empty_process()));
    spec.set_root(None);
    spec.set_hostname(None);
    spec.set_domainname(None);
    spec.set_mounts(None);
    spec.set_annotations(None);
    spec.set_linux(Some(empty_linux()));
    spec
}

fn empty_process() -> Process {
    let mut p = Process::default();
    p.set_terminal(None);
    p.set_args(None);
    p.set_env(None);
    p.set_cwd("/".into());
    p.set_capabilities(None);
    p.set_rlimits(None);
    p.set_no_new_privileges(None);
    p
}

fn empty_linux() -> Linux {
    let mut l = Linux::default();
    l.set_uid_mappings(None);
    l.set_gid_mappings(None);
    l.set_sysctl(None);
    l.set_resources(None);
    l.set_cgroups_path(None);
    l.set_namespaces(None);
    l.set_devices(None);
    l.set_rootfs_propagation(None);
    l.set_masked_paths(None);
    l.set_readonly_paths(None);
    l.set_mount_label(None);
    l
}

/// The spec's `process`; [`base`] gives every spec one.
pub(crate) fn process_mut(spec: &mut Spec) -> &mut Process {
    spec.process_mut().get_or_insert_with(empty_process)
}

/// The spec's `linux`; [`base`] gives every spec one.
pub(crate) fn linux_mut(spec: &mut Spec) -> &mut Linux {
    spec.linux_mut().get_or_insert_with(empty_linux)
}

fn with_root_and_hostname(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let mut root = Root::default();
    root.set_path(c.inputs.rootfs.to_path_buf());
    root.set_readonly(Some(c.config().security.readonly_rootfs));
    spec.set_root(Some(root));
    spec.set_hostname(Some(c.hostname.clone()));
    spec.set_domainname(Some(c.config().domainname.clone()));
    Ok(())
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns
}

/// Private pid, ipc, uts, mount namespaces; a network one unless on the host's
/// network; a cgroup one on cgroup v2 hosts. Published ports are refused but on a
/// bridge network.
fn with_namespaces(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let network = &c.config().network;
    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid),
        namespace(LinuxNamespaceType::Ipc),
        namespace(LinuxNamespaceType::Uts),
        namespace(LinuxNamespaceType::Mount),
    ];
    if network.mode != NetworkMode::Host {
        namespaces.push(namespace(LinuxNamespaceType::Network));
        // On a bridge network (the default one or a user's) the engine publishes them
        // (`networks/ports.rs`); an engine without a default bridge refuses them at
        // create.
        let bridge = matches!(network.mode, NetworkMode::Bridge | NetworkMode::Default);
        let mut published: Vec<&str> = network
            .published_ports
            .iter()
            .map(|p| p.container_port.as_str())
            .collect();
        // One entry per port, however many host bindings it has.
        published.dedup();
        if !published.is_empty() && !bridge {
            return Err(SpecError::Ports(published.join(", ")));
        }
        if network.publish_all && !bridge {
            return Err(SpecError::Ports("-P".into()));
        }
    }
    if berth_runtime::cgroups::host_is_v2() {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup));
    }
    linux_mut(spec).set_namespaces(Some(namespaces));
    Ok(())
}

fn with_cgroups_path(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    linux_mut(spec).set_cgroups_path(Some(c.inputs.cgroups_path.clone().into()));
    Ok(())
}

fn with_sysctls(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    if let Some(sysctls) = &c.config().security.sysctls {
        linux_mut(spec).set_sysctl(Some(sysctls.clone().into_iter().collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
