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
}
