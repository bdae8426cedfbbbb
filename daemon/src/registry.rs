//! The registry client's settings from berthd's `[registries]`.

use crate::config::Config;

/// The registry client settings from berthd's `[registries]`, plus `extra` credentials
/// for one host (from a request's `X-Registry-Auth`).
///
/// Loopback registries without an entry are plain HTTP, as Docker treats
/// `127.0.0.0/8` as insecure; configure `ca_file` for a TLS registry on loopback.
pub fn registry_config(
    config: &Config,
    extra: Option<(&str, berth_image::registry::Credentials)>,
) -> berth_image::RegistryConfig {
    let mut out = berth_image::RegistryConfig::default();
    for (host, reg) in &config.registries {
        let entry = out.host_mut(host);
        let scheme = if reg.insecure { "http" } else { "https" };
        entry.mirrors = reg
            .mirrors
            .iter()
            .map(|m| {
                if m.contains("://") {
                    m.clone()
                } else {
                    format!("{scheme}://{m}")
                }
            })
            .collect();
        entry.mirror_fallback = reg.fallback_to_upstream.unwrap_or(true);
        entry.insecure = reg.insecure;
        entry.ca_certs = reg.ca_file.iter().cloned().collect();
        entry.username = reg.username.clone();
        entry.password = reg.password.clone();
    }
    if let Some((host, creds)) = extra {
        let entry = out.host_mut(host);
        entry.username = Some(creds.username);
        entry.password = Some(creds.password);
    }
    out
}

/// [`registry_config`] for talking to `registry`, which is made plain HTTP when it is
/// a loopback host without its own entry.
pub fn registry_config_for(
    config: &Config,
    registry: &str,
    creds: Option<berth_image::registry::Credentials>,
) -> berth_image::RegistryConfig {
    let mut out = registry_config(config, None);
    out.plain_http_for_loopback(registry);
    if let Some(creds) = creds {
        let entry = out.host_mut(registry);
        entry.username = Some(creds.username);
        entry.password = Some(creds.password);
    }
    out
}
