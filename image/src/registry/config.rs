//! Registry settings: mirrors, plain-HTTP registries, extra CA certificates, credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of all registries (the `[registries]` part of berth's config).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// Per registry host (`docker.io`, `127.0.0.1:5000`, …).
    #[serde(default)]
    pub hosts: BTreeMap<String, HostConfig>,
    /// A Docker client config to read `auths` from; `None` reads nothing (tests), see
    /// [`RegistryConfig::with_default_docker_config`].
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
}

/// Settings of one registry host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostConfig {
    /// Mirror endpoints tried in order before the registry itself, e.g.
    /// `https://mirror.example:5000` or `http://127.0.0.1:5001`.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Whether to fall back to the registry itself when every mirror fails.
    #[serde(default = "yes")]
    pub mirror_fallback: bool,
    /// Talk plain HTTP to this registry (only where configured).
    #[serde(default)]
    pub insecure: bool,
    /// Extra PEM CA certificates trusted for this registry and its mirrors.
    #[serde(default)]
    pub ca_certs: Vec<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            mirrors: Vec::new(),
            mirror_fallback: true,
            insecure: false,
            ca_certs: Vec::new(),
            username: None,
            password: None,
        }
    }
}

impl RegistryConfig {
    /// Reads `auths` from `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn with_default_docker_config(mut self) -> Self {
        let path = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .map(|d| d.join("config.json"));
        self.docker_config = path;
        self
    }

    /// The settings of `host` (defaults when not configured).
    pub fn host(&self, host: &str) -> HostConfig {
        self.hosts.get(host).cloned().unwrap_or_default()
    }

    /// A mutable entry for `host`, created with defaults.
    pub fn host_mut(&mut self, host: &str) -> &mut HostConfig {
        self.hosts.entry(host.to_string()).or_default()
    }

    /// Docker's rule (containerd's CRI has it too): a loopback registry without an
    /// entry of its own is spoken to in plain HTTP. Call before adding per-request
    /// entries (credentials), which would count as configuration.
    pub fn plain_http_for_loopback(&mut self, registry: &str) {
        if !self.hosts.contains_key(registry) && is_loopback(registry) {
            self.host_mut(registry).insecure = true;
        }
    }
}

/// Whether `registry` (`host` or `host:port`) is on loopback: `localhost`,
/// `127.0.0.0/8` or `[::1]`.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    };
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

#[cfg(test)]
mod loopback_tests {
    use super::*;

    #[test]
    fn loopback_registries_without_an_entry_are_plain_http() {
        for host in ["localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:443"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example:5000",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
        let mut config = RegistryConfig::default();
        config.host_mut("127.0.0.1:6000").ca_certs = vec![PathBuf::from("/ca.pem")];
        config.plain_http_for_loopback("127.0.0.1:5000");
        config.plain_http_for_loopback("127.0.0.1:6000");
        config.plain_http_for_loopback("docker.io");
        assert!(config.host("127.0.0.1:5000").insecure);
        // A loopback registry with an entry (a TLS one here) keeps what it says.
        assert!(!config.host("127.0.0.1:6000").insecure);
        assert!(!config.hosts.contains_key("docker.io"));
    }
}
