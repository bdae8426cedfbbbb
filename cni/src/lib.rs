//! CNI for berth: pod network namespaces, network config loading, plugin execution, and
//! the on-disk result cache.
//!
//! The CRI server holds one [`Cni`] for its lifetime:
//!
//! ```no_run
//! use berth_cni::{Cni, CniOptions, Netns, PodNetwork};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cni = Cni::new(CniOptions::default());
//! assert!(cni.status().ready);                      // CRI Status → NetworkReady
//! let ns = Netns::create("/run/berth/netns".as_ref(), "pod1")?;
//! let pod = PodNetwork {
//!     id: "pod1".into(), namespace: "default".into(), name: "web".into(), uid: "u1".into(),
//!     netns: ns.path().to_path_buf(), ..Default::default()
//! };
//! let attached = cni.setup(&pod)?;                  // RunPodSandbox: CNI ADD
//! println!("pod IPs: {:?}", attached.ips);          // PodSandboxStatus.network
//! cni.teardown(&pod)?;                              // StopPodSandbox: CNI DEL (retry on error)
//! ns.remove()?;                                     // RemovePodSandbox
//! # Ok(()) }
//! ```
//!
//! - [`Netns`]: create a network namespace pinned at `<dir>/<id>` (no process kept), run
//!   code or commands inside it, remove it idempotently.
//! - [`Cni::setup`] runs ADD through the chain of the first usable config in the conf dir
//!   (`.conflist`, `.conf`, `.json`, lexical order, re-read when the dir changes), with
//!   `prevResult`, per-plugin timeouts, `CNI_ARGS` carrying the `K8S_POD_*` keys, and the
//!   `portMappings`/`dns`/`bandwidth`/`ips` capabilities given only to plugins that
//!   declare them. A failed ADD is undone with DEL.
//! - [`Cni::teardown`] runs DEL in reverse order with the config, arguments and result the
//!   ADD used, read from `<cache>/results/<network>-<id>-<ifname>`, so it works after a
//!   daemon restart and when the netns is already gone; it is safe to repeat until it
//!   succeeds.
//! - [`Cni::status`] is NetworkReady with a reason (`NoNetworkConfig`,
//!   `InvalidNetworkConfig`, `PluginNotFound`, `PluginIncompatible` from VERSION,
//!   `PluginNotReady` from CNI 1.1 STATUS); an empty conf dir gets berth's default network
//!   ([`DefaultNetwork`]: bridge `berth0`, 10.88.0.0/16, host-local, masquerade, firewall,
//!   portmap). The pod's `lo` is brought up by berth itself, not by a plugin.
//! - [`Cni::cached_attachments`] lists attachments whose DEL has not succeeded yet, for
//!   the daemon's reconciliation after a restart.
//! - Host-network pods never reach this crate: the runtime skips CNI for them.
//!
//! # Firewall backends and host ports
//!
//! The `bridge`, `portmap` and `firewall` plugins (Debian's containernetworking-plugins
//! 1.1.1) run the `iptables` binary, so rules land in whichever backend
//! `update-alternatives --display iptables` selects (`iptables-nft` on Debian 12, also
//! after a fresh install); berth's own masquerade cleanup calls the same binary and so
//! always matches. Host ports on 127.0.0.1 work because `portmap` with `snat: true` (the
//! default network sets it) sets `net.ipv4.conf.<bridge>.route_localnet=1` and
//! masquerades connections from localhost and hairpin connections from the pod subnet.
//!
//! # netavark: evaluated, not used
//!
//! The `netavark` crate (podman's network stack) was evaluated for the netlink and
//! firewall work berth does itself. It is not a dependency, because:
//! - In this design the CNI plugins do the network work (veths, bridges, addresses,
//!   routes, iptables). berth's own part is tiny: bringing `lo` up (one ioctl, in
//!   [`Netns::set_loopback_up`]) and removing the `bridge` plugin's masquerade chain when
//!   the plugin's DEL cannot (see `ipmasq`), which must match the plugin's chain naming
//!   and the `iptables` binary the plugin itself calls — netavark's firewall drivers
//!   manage netavark's own `NETAVARK-*` chains/nft table and cannot remove CNI's.
//! - netavark is built as a binary first: its library API is its own network model
//!   (`network::types::Network`, its commands) and it brings tokio, zbus, tonic/protobuf
//!   (the DHCP proxy) and the rust-netlink stack, far more than the few dozen lines it
//!   would replace.
//! - Its `exec_netns!` namespace helper needs a host-ns fd juggling pattern; our
//!   thread-per-entry [`Netns::run`] is simpler and leaves the caller's thread untouched.
//!
//! If berth later grows its own bridge driver (docker-style user networks without CNI),
//! netavark's netlink and nftables modules are the first thing to reconsider.

mod attach;
mod cache;
mod config;
mod default_network;
mod exec;
mod ipmasq;
mod manager;
mod netns;
mod pod;
mod result;

pub use attach::Attachment;
pub use cache::CacheError;
pub use config::{ConfigError, NetworkConfig, PluginConf};
pub use default_network::{DefaultNetwork, DEFAULT_CONFLIST};
pub use exec::ExecError;
pub use manager::{Cni, CniOptions, NetworkStatus, PodNetworkStatus};
pub use netns::{Netns, NetnsError};
pub use pod::{Bandwidth, DnsConfig, PodNetwork, PortMapping};
pub use result::{CniResult, Dns, Interface, IpConfig, ResultError, Route};

/// Errors of [`Cni`] operations.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No usable network config or plugin; `reason` is CamelCase for CRI conditions.
    #[error("network not ready ({reason}): {message}")]
    NotReady { reason: String, message: String },
    #[error("invalid pod network request: {0}")]
    InvalidPod(String),
    #[error("pod {0} is not attached to the network (no cached ADD result)")]
    NotAttached(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("writing the default network config into {path}: {source}")]
    WriteDefault {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("network {network:?}: {source}")]
    Plugin { network: String, source: ExecError },
    #[error("network {network:?}: {source}")]
    BadResult {
        network: String,
        source: ResultError,
    },
    #[error("network {network:?}: DEL of {container_id} failed (will be retried): {}", errors.join("; "))]
    Teardown {
        network: String,
        container_id: String,
        errors: Vec<String>,
    },
    #[error("{add}; undoing it failed too: {del}")]
    RollbackFailed {
        add: Box<CniError>,
        del: Box<CniError>,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<CniError>),
}
