//! `X-Registry-Auth`: the base64url JSON credentials Docker clients send with pull
//! and push, turned into a registry client for one registry.

use std::sync::Arc;

use base64::Engine;
use berth_image::registry::Credentials;
use berth_image::Client;
use serde::Deserialize;

use super::super::{ApiError, ApiRequest};
use crate::Daemon;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AuthConfig {
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(alias = "serveraddress")]
    pub serveraddress: Option<String>,
}

impl AuthConfig {
    pub fn credentials(&self) -> Option<Credentials> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }),
            _ => None,
        }
    }
}

/// Decodes the header; absent or `{}` means no credentials.
pub fn from_header(req: &ApiRequest) -> Result<AuthConfig, ApiError> {
    let Some(value) = req.headers.get("x-registry-auth") else {
        return Ok(AuthConfig::default());
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("X-Registry-Auth is not ASCII".into()))?
        .trim();
    if text.is_empty() {
        return Ok(AuthConfig::default());
    }
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = [URL_SAFE, URL_SAFE_NO_PAD, STANDARD]
        .iter()
        .find_map(|e| e.decode(text).ok())
        .ok_or_else(|| ApiError::BadRequest("X-Registry-Auth is not base64".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("X-Registry-Auth is not valid JSON: {e}")))
}

/// A registry client for `registry` with the daemon's settings and `auth`.
pub fn client(daemon: &Daemon, registry: &str, auth: &AuthConfig) -> Result<Arc<Client>, ApiError> {
    let config = crate::registry::registry_config_for(&daemon.config, registry, auth.credentials());
    Client::new(config)
        .map(Arc::new)
        .map_err(|e| ApiError::Internal(format!("registry client for {registry}: {e}")))
}

/// The registry host of a `serveraddress` (`https://host:5000/v1/` → `host:5000`).
pub fn server_host(address: &str) -> String {
    let rest = address
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = rest.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_become_hosts() {
        assert_eq!(server_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(server_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(server_host("https://reg.example:443/"), "reg.example:443");
    }
}
