//! berth's own container config: what a container is made of, in the engine's terms.
//! The Docker API and the CRI each translate their create requests into it once; the
//! spec builder (`container_spec`) reads only this.

use std::collections::BTreeMap;

/// A container to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The image as the client named it.
    pub image: String,
    pub process: ProcessConfig,
    /// Empty: the first 12 characters of the id (the host's name on the host's
    /// network).
    pub hostname: String,
    pub domainname: String,
    /// In order; a destination may appear once.
    pub mounts: Vec<Mount>,
    /// Host devices made in the container and allowed in its device cgroup.
    pub devices: Vec<Device>,
    pub resources: Resources,
    pub security: Security,
    pub network: NetworkAttachment,
    /// The runtime handler (`[runtimes]` in berthd's config); empty: the default.
    pub runtime: String,
    pub labels: BTreeMap<String, String>,
    /// The health check; `None`: the image's.
    pub health: Option<crate::health::HealthConfig>,
    /// Anonymous volumes at the image's `VOLUME` paths that no mount covers (Docker's
    /// rule; the CRI does not ask for them).
    pub image_volumes: bool,
}

/// The container's process, as overrides of what the image says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Replaces the image's entrypoint (and drops the image's cmd); empty strings in it
    /// are left out, so `Some([""])` clears the entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd when not empty.
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` entries; a bare `KEY` unsets the key.
    pub env: Vec<String>,
    /// `user[:group]`, names or ids; empty: the image's.
    pub user: String,
    /// Empty: the image's, else `/`.
    pub working_dir: String,
    pub tty: bool,
    /// The process gets a stdin that clients attach to.
    pub open_stdin: bool,
    /// The process's stdin closes when the first attached client's stdin ends.
    pub stdin_once: bool,
    /// Empty: the image's, else SIGTERM.
    pub stop_signal: Option<String>,
    /// Run berth's minimal init as PID 1, which runs the command, forwards signals to
    /// it, reaps zombies and exits with the command's status (`docker run --init`).
    pub init: bool,
    /// Groups the process joins besides the user's: gids, or names looked up in the
    /// image's `/etc/group`.
    pub additional_groups: Vec<String>,
    /// Resource limits of the process; none: inherited from the shim.
    pub rlimits: Vec<Rlimit>,
}

/// A resource limit (`setrlimit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// Lower case without the prefix, as Docker names them: `nofile`, `nproc`, `core`.
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// A host device node given to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device node on the host, or a directory whose device nodes are all given.
    pub host_path: String,
    /// Where it appears in the container; empty: the host path.
    pub container_path: String,
    /// Device cgroup access, letters of `rwm`; empty: `rwm`.
    pub permissions: String,
}

/// A mount the container asks for (kept in the record as created, volumes named).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// An absolute path in the container.
    pub destination: String,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountKind {
    /// A host path bound into the container.
    Bind {
        /// An absolute host path.
        source: String,
        read_only: bool,
        /// `rbind` (with the mounts under the source) or `bind`.
        recursive: bool,
        propagation: Propagation,
        /// Made (as a 0755 directory) at each start when missing, as dockerd does for
        /// `-v`.
        create_source: bool,
    },
    /// A tmpfs: `noexec`, `nosuid`, `nodev` unless `options` has `exec`, `suid`,
    /// `dev`; the other options follow in order (`ro`, `size=…`, `mode=…`).
    Tmpfs { options: Vec<String> },
    /// A volume of the local driver (`engine/src/volumes/`), made on first use.
    Volume {
        /// `None`: an anonymous volume, with a generated name.
        name: Option<String>,
        read_only: bool,
        /// Do not copy the image's content at the destination into an empty volume.
        nocopy: bool,
        /// The volume's data directory on the host: filled in by the engine's create;
        /// front doors leave it empty.
        source: String,
        /// How to make the volume when it does not exist yet (`--mount`'s
        /// `volume-opt`s and labels); an existing volume is used as it is.
        #[serde(default, skip_serializing_if = "VolumeCreate::is_empty")]
        create: VolumeCreate,
    },
}

/// The labels and local driver options a mount makes its volume with.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeCreate {
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

impl VolumeCreate {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.options.is_empty()
    }
}

/// A bind's mount propagation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    Private,
    #[default]
    Rprivate,
    Slave,
    Rslave,
    Shared,
    Rshared,
}

impl Propagation {
    pub const ALL: [Propagation; 6] = [
        Propagation::Private,
        Propagation::Rprivate,
        Propagation::Slave,
        Propagation::Rslave,
        Propagation::Shared,
        Propagation::Rshared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Rprivate => "rprivate",
            Propagation::Slave => "slave",
            Propagation::Rslave => "rslave",
            Propagation::Shared => "shared",
            Propagation::Rshared => "rshared",
        }
    }

    /// `rslave` → `Rslave`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Propagation> {
        Propagation::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Limits; zero (or `None`) is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Bytes; at least 6 MiB when set.
    pub memory: i64,
    pub memory_reservation: i64,
    /// Memory plus swap, bytes; -1: unlimited.
    pub memory_swap: i64,
    /// CPUs in billionths (exclusive with `cpu_period`/`cpu_quota`).
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// A limit of 0 or less is none.
    pub pids_limit: Option<i64>,
    /// 10..1000; 0 unset.
    pub blkio_weight: u16,
    /// `/dev/shm`'s size in bytes; 0: 64 MiB.
    pub shm_size: i64,
    /// `(page size like "2MB", bytes)`.
    pub hugepage_limits: Vec<(String, u64)>,
    /// cgroup v2 files and their values (OCI `linux.resources.unified`).
    pub unified: BTreeMap<String, String>,
    /// No OOM killer in the container's memory cgroup (cgroup v1 only).
    pub oom_kill_disable: bool,
}

/// What the container may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub privileged: bool,
    /// Capability names (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`), any case.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub readonly_rootfs: bool,
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    pub oom_score_adj: i64,
    /// `None`: the spec sets no sysctls at all.
    pub sysctls: Option<BTreeMap<String, String>>,
}

/// The container's seccomp filter (none for privileged containers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// berth's own profile.
    #[default]
    Default,
    Unconfined,
    /// A profile in Docker's seccomp JSON format (checked by
    /// `container_spec::seccomp_profile::check`).
    Profile(String),
}

/// How the container reaches a network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub mode: NetworkMode,
    /// `port[/tcp|udp|sctp]` keys the container says it listens on (checked).
    pub exposed_ports: Vec<String>,
    /// Ports to publish on the host, and whether to publish every exposed port on a
    /// host port of its own: published on a bridge network, refused on `none`.
    pub published_ports: Vec<PublishedPort>,
    pub publish_all: bool,
    /// With [`NetworkMode::Bridge`]: the network's name or id; with
    /// [`NetworkMode::Container`]: the container's.
    pub network: String,
    /// The IPv4 address asked for on it (`--ip`); empty: any.
    pub ip: String,
    /// The IPv6 address asked for on it (`--ip6`, a network with IPv6); empty: any.
    pub ip6: String,
    /// More names on it (`--network-alias`), kept for name resolution.
    pub aliases: Vec<String>,
    /// `--dns`: the container's nameservers (on a user network, the embedded
    /// server's upstreams for it), checked to be IP addresses.
    pub dns: Vec<String>,
    /// `--dns-search` and `--dns-option`: its resolv.conf's `search` and `options`.
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--add-host` entries, `name:ip` (`ip` may be `host-gateway`), written into
    /// the container's /etc/hosts.
    pub extra_hosts: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's network namespace.
    Host,
    /// A network namespace with loopback only.
    None,
    /// The default `bridge` network (loopback only on an engine without one).
    #[default]
    Default,
    /// A user bridge network (`--network NAME`, named in
    /// [`NetworkAttachment::network`]).
    Bridge,
    /// Another container's network namespace (`--network container:NAME`, the name
    /// or id in [`NetworkAttachment::network`]), joined at each start.
    Container,
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// The container port as the client named it (`80/tcp`).
    pub container_port: String,
    pub host_ip: String,
    pub host_port: String,
}
