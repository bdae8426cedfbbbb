//! berthd's configuration: `/etc/berth/config.toml`, overridden by flags.
//!
//! Every path is configurable so tests can run isolated daemons side by side.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where berthd looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/config.toml";

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is part of the message (not `#[source]`): berthd prints error chains, and
    // a source would say it twice.
    #[error("reading config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {cause}")]
    Parse {
        path: PathBuf,
        cause: Box<toml::de::Error>,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// berthd's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent state: content, snapshots, volumes, the metadata database.
    pub root: PathBuf,
    /// Runtime state: sockets, shim dirs, pinned namespaces, CNI cache.
    pub state: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    /// Per-registry settings keyed by host (`host` or `host:port`).
    pub registries: BTreeMap<String, RegistryConfig>,
    pub cni: CniConfig,
    /// Runtime handlers (Kubernetes RuntimeClass) by name.
    pub runtimes: BTreeMap<String, RuntimeHandler>,
    /// The handler used when a request names none.
    pub default_runtime: String,
    pub cgroup_driver: CgroupDriver,
    /// The log driver of Docker-API containers whose create names none (daemon.json's
    /// `log-driver`): `json-file`, `local` or `none`.
    pub log_driver: String,
    /// The default driver's options (daemon.json's `log-opts`: `max-size`,
    /// `max-file`, `compress`), under a container's own when it names that driver.
    pub log_opts: BTreeMap<String, String>,
    /// Where Prometheus metrics are served; none when unset.
    pub metrics_address: Option<SocketAddr>,
    /// The CRI socket kubelet and crictl use; `<state>/berth.sock` when unset.
    pub cri_socket: Option<PathBuf>,
    /// CRI's streaming server (Exec, Attach, PortForward), named as containerd's keys.
    pub cri_streaming: CriStreamingConfig,
    /// The default `bridge` network of Docker-API containers.
    pub networks: NetworksConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/var/lib/berth"),
            state: PathBuf::from("/run/berth"),
            log_level: "info".to_string(),
            registries: BTreeMap::new(),
            cni: CniConfig::default(),
            runtimes: BTreeMap::new(),
            default_runtime: "berth".to_string(),
            cgroup_driver: CgroupDriver::Cgroupfs,
            log_driver: crate::logs::drivers::DEFAULT_DRIVER.to_string(),
            log_opts: BTreeMap::new(),
            metrics_address: None,
            cri_socket: None,
            cri_streaming: CriStreamingConfig::default(),
            networks: NetworksConfig::default(),
        }
    }
}

/// `[networks]`: the default `bridge` network, as made on berthd's first start (a
/// change later does not move a network already made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworksConfig {
    /// The host bridge of the default network (dockerd's `docker0`); not `berth0`,
    /// which the pods' default CNI network uses.
    pub default_bridge: String,
    /// Its IPv4 subnet; unset: 172.17.0.0/16 unless the host's routes cover part of
    /// it, else the next free one of Docker's pools.
    pub default_subnet: Option<String>,
    /// Where the user networks' DNS servers forward names that are not containers'
    /// (`"ip"` or `"ip:port"`); empty: the host's /etc/resolv.conf nameservers.
    pub dns_upstreams: Vec<String>,
}

impl NetworksConfig {
    /// `dns_upstreams` as socket addresses (port 53 unless given).
    pub fn dns_upstreams(&self) -> Result<Vec<std::net::SocketAddr>, String> {
        self.dns_upstreams
            .iter()
            .map(|u| {
                u.parse::<std::net::SocketAddr>()
                    .or_else(|_| u.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                    .map_err(|_| format!("dns_upstreams: {u:?} is not an IP address or IP:port"))
            })
            .collect()
    }
}

impl Default for NetworksConfig {
    fn default() -> Self {
        let def = berth_engine::networks::DefaultBridge::default();
        NetworksConfig {
            default_bridge: def.bridge,
            default_subnet: def.subnet,
            dns_upstreams: Vec::new(),
        }
    }
}

/// `[cri_streaming]`: where CRI's streaming server listens (containerd's
/// `stream_server_*` settings of its CRI plugin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriStreamingConfig {
    /// The address to listen on; loopback by default.
    pub stream_server_address: std::net::IpAddr,
    /// 0: a free port chosen at start.
    pub stream_server_port: u16,
    /// A connection with no traffic for this long is closed ("4h", "30m"; "0" never).
    pub stream_idle_timeout: String,
    /// TLS for the streaming server (`https://` URLs): the certificate and key from
    /// `tls_cert_file` and `tls_key_file` (PEM), or with neither, a self-signed one made
    /// at start, as containerd does.
    pub enable_tls_streaming: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl Default for CriStreamingConfig {
    fn default() -> Self {
        CriStreamingConfig {
            stream_server_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            stream_server_port: 0,
            stream_idle_timeout: "4h".to_string(),
            enable_tls_streaming: false,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl CriStreamingConfig {
    /// The idle timeout as a duration; `None` for "0" (never).
    pub fn idle_timeout(&self) -> Result<Option<std::time::Duration>, String> {
        let text = self.stream_idle_timeout.trim();
        if text == "0" {
            return Ok(None);
        }
        humantime::parse_duration(text)
            .map(Some)
            .map_err(|e| format!("cri_streaming.stream_idle_timeout {text:?}: {e}"))
    }

    /// TLS as configured: `Ok(None)` for plain HTTP. The files are read when the
    /// server starts; here only their combination is checked.
    pub fn tls(&self) -> Result<Option<berth_cri_server::StreamingTls>, String> {
        let (cert, key) = (&self.tls_cert_file, &self.tls_key_file);
        if !self.enable_tls_streaming {
            return match (cert, key) {
                (None, None) => Ok(None),
                (Some(_), _) | (_, Some(_)) => Err(
                    "cri_streaming.tls_cert_file/tls_key_file are set but enable_tls_streaming is false; set it to true to serve TLS".into(),
                ),
            };
        }
        match (cert, key) {
            (None, None) => Ok(Some(berth_cri_server::StreamingTls::SelfSigned)),
            (Some(cert), Some(key)) => Ok(Some(berth_cri_server::StreamingTls::Files {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, Some(key)) => Err(format!(
                "cri_streaming.tls_key_file {} is set without tls_cert_file; set both, or neither for a self-signed certificate",
                key.display()
            )),
            (Some(cert), None) => Err(format!(
                "cri_streaming.tls_cert_file {} is set without tls_key_file; set both, or neither for a self-signed certificate",
                cert.display()
            )),
        }
    }
}

/// How berth talks to one registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Mirrors tried in order before the registry itself (`host[:port]` or a URL).
    pub mirrors: Vec<String>,
    /// Go to the registry itself when every mirror failed.
    pub fallback_to_upstream: Option<bool>,
    /// Plain HTTP is allowed for this registry.
    pub insecure: bool,
    /// Extra CA certificates (PEM) trusted for this registry.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Where CNI configurations and plugins are found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CniConfig {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        }
    }
}

/// An OCI runtime a pod can ask for by handler name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHandler {
    /// Path of an external runtime binary (runc's command line); the built-in
    /// runtime, called in-process, when unset.
    pub path: Option<PathBuf>,
}

/// Who manages container cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

impl Config {
    /// Loads `path`. A missing file is an error only when `explicit` (the user named it
    /// with `--config`); the default path may be absent on a fresh node.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    cause: source,
                })
            }
        };
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            cause: Box::new(source),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.cgroup_driver == CgroupDriver::Systemd {
            return Err(invalid(
                "cgroup_driver = \"systemd\" is not supported yet; use \"cgroupfs\"".into(),
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log_level.as_str()) {
            return Err(invalid(format!(
                "log_level {:?} is not one of error, warn, info, debug, trace",
                self.log_level
            )));
        }
        for (dir, what) in [(&self.root, "root"), (&self.state, "state")] {
            if !dir.is_absolute() {
                return Err(invalid(format!(
                    "{what} {} must be an absolute path",
                    dir.display()
                )));
            }
        }
        if self.default_runtime != BUILTIN_RUNTIME
            && !self.runtimes.contains_key(&self.default_runtime)
        {
            return Err(invalid(format!(
                "default_runtime {:?} names no [runtimes] entry",
                self.default_runtime
            )));
        }
        use crate::logs::drivers::{settings, LogConfigError};
        settings(&self.log_driver, &self.log_opts).map_err(|e| match e {
            LogConfigError::UnknownDriver(_) => {
                invalid(format!("log_driver {:?}: {e}", self.log_driver))
            }
            LogConfigError::Opt { key, message } => invalid(format!(
                "log_opts.{key} (log_driver {:?}): {message}",
                self.log_driver
            )),
        })?;
        let streaming = &self.cri_streaming;
        streaming.idle_timeout().map_err(invalid)?;
        streaming.tls().map_err(invalid)?;
        for (host, registry) in &self.registries {
            if registry.fallback_to_upstream == Some(false) && registry.mirrors.is_empty() {
                return Err(invalid(format!(
                    "registry {host}: fallback_to_upstream = false needs at least one mirror"
                )));
            }
        }
        Ok(())
    }

    /// The runtime handlers the engine resolves containers' handlers with.
    pub fn runtime_handlers(&self) -> berth_engine::RuntimeHandlers {
        berth_engine::RuntimeHandlers {
            state: self.state.clone(),
            default: self.default_runtime.clone(),
            handlers: self
                .runtimes
                .iter()
                .map(|(name, handler)| (name.clone(), handler.path.clone()))
                .collect(),
        }
    }

    /// Every runtime handler name a request may use: `berth` (the built-in runtime)
    /// and the `[runtimes]` entries.
    pub fn runtime_names(&self) -> Vec<String> {
        self.runtime_handlers().names()
    }

    /// The handler a request naming `name` runs under (empty: the default) and the
    /// external runtime binary it calls (`None`: the built-in runtime, in the shim).
    pub fn resolve_runtime(&self, name: &str) -> Result<(String, Option<PathBuf>), String> {
        self.runtime_handlers().resolve(name)
    }

    /// The state directory of an external runtime handler (its `--root`).
    pub fn runtime_root(&self, name: &str) -> PathBuf {
        self.runtime_handlers().root(name)
    }
}

/// The name of the runtime berth-shim runs in-process.
pub use berth_engine::runtimes::BUILTIN_RUNTIME;

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().map_err(|source| ConfigError::Read {
            path: PathBuf::from("tempdir"),
            cause: source,
        })?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).map_err(|source| ConfigError::Read {
            path: path.clone(),
            cause: source,
        })?;
        Config::load(&path, true)
    }

    #[test]
    fn missing_default_file_gives_defaults_but_missing_explicit_file_fails() {
        let path = Path::new("/nonexistent/berth/config.toml");
        assert_eq!(Config::load(path, false).ok(), Some(Config::default()));
        let err = Config::load(path, true).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("/nonexistent/berth/config.toml")));
    }

    #[test]
    fn runtime_handlers_resolve_to_builtin_or_binary() {
        let mut config = Config::default();
        config.runtimes.insert(
            "runc".into(),
            RuntimeHandler {
                path: Some(PathBuf::from("/usr/sbin/runc")),
            },
        );
        assert_eq!(config.runtime_names(), ["berth", "runc"]);
        assert_eq!(config.resolve_runtime(""), Ok(("berth".into(), None)));
        assert_eq!(config.resolve_runtime("berth"), Ok(("berth".into(), None)));
        assert_eq!(
            config.resolve_runtime("runc"),
            Ok(("runc".into(), Some(PathBuf::from("/usr/sbin/runc"))))
        );
        let err = config.resolve_runtime("kata").unwrap_err();
        assert!(err.contains("kata") && err.contains("berth, runc"), "{err}");
        config.default_runtime = "runc".into();
        assert_eq!(
            config.resolve_runtime("").map(|r| r.0),
            Ok("runc".to_string())
        );
        assert_eq!(
            config.runtime_root("runc"),
            PathBuf::from("/run/berth/runtimes/runc")
        );
    }

    #[test]
    fn full_config_parses() {
        let config = load_str(
            r#"
            root = "/tmp/berth-root"
            state = "/tmp/berth-state"
            log_level = "debug"
            log_driver = "local"
            default_runtime = "runc"
            metrics_address = "127.0.0.1:9323"
            cri_socket = "/tmp/berth-state/cri.sock"
            [registries."docker.io"]
            mirrors = ["127.0.0.1:5000"]
            fallback_to_upstream = false
            [registries."127.0.0.1:5000"]
            insecure = true
            [cni]
            conf_dir = "/tmp/cni/net.d"
            bin_dirs = ["/usr/lib/cni"]
            [runtimes.runc]
            path = "/usr/sbin/runc"
            [log_opts]
            max-size = "1m"
            max-file = "2"
            "#,
        );
        let config = match config {
            Ok(config) => config,
            Err(err) => panic!("config should parse: {err}"),
        };
        assert_eq!(config.root, PathBuf::from("/tmp/berth-root"));
        assert_eq!(
            config.registries["docker.io"].mirrors,
            vec!["127.0.0.1:5000"]
        );
        assert!(config.registries["127.0.0.1:5000"].insecure);
        assert_eq!(
            config.runtimes["runc"].path.as_deref(),
            Some(Path::new("/usr/sbin/runc"))
        );
        assert_eq!(config.log_driver, "local");
        assert_eq!(config.log_opts["max-size"], "1m");
        assert_eq!(config.metrics_address.map(|a| a.port()), Some(9323));
        assert_eq!(
            config.cri_socket.as_deref(),
            Some(Path::new("/tmp/berth-state/cri.sock"))
        );
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            ("roots = \"/x\"", "unknown field `roots`"),
            // The old rotation table: rotation is log_driver/log_opts now.
            ("[logs]\nmax_files = 2", "unknown field `logs`"),
            ("cgroup_driver = \"systemd\"", "not supported yet"),
            ("log_level = \"loud\"", "log_level \"loud\""),
            ("root = \"relative\"", "must be an absolute path"),
            (
                "log_driver = \"syslog\"",
                "log_driver \"syslog\": logger: no log driver named 'syslog'",
            ),
            (
                "[log_opts]\nmax-size = \"lots\"",
                "log_opts.max-size (log_driver \"json-file\"): invalid value",
            ),
            ("[log_opts]\nmax-file = \"3\"", "log_opts.max-file"),
            (
                "log_driver = \"none\"\n[log_opts]\nmax-size = \"1m\"",
                "log_opts.max-size (log_driver \"none\"): unknown log opt",
            ),
            ("default_runtime = \"kata\"", "names no [runtimes] entry"),
            (
                "[cri_streaming]\ntls_key_file = \"/k\"",
                "enable_tls_streaming is false",
            ),
            (
                "[cri_streaming]\nenable_tls_streaming = true\ntls_key_file = \"/k\"",
                "cri_streaming.tls_key_file /k is set without tls_cert_file",
            ),
            (
                "[cri_streaming]\nenable_tls_streaming = true\ntls_cert_file = \"/c\"",
                "cri_streaming.tls_cert_file /c is set without tls_key_file",
            ),
            (
                "[cri_streaming]\nstream_idle_timeout = \"soon\"",
                "cri_streaming.stream_idle_timeout",
            ),
            ("[cri_streaming]\nport = 1", "unknown field `port`"),
            ("metrics_address = \"localhost\"", "metrics_address"),
            ("metrics_address = \"127.0.0.1:99999\"", "metrics_address"),
            (
                "[registries.\"x\"]\nfallback_to_upstream = false",
                "needs at least one mirror",
            ),
        ];
        for (text, expected) in cases {
            let err = load_str(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(expected),
                "{text:?}: error {err:?} lacks {expected:?}"
            );
        }
    }
}
