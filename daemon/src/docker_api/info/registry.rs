//! `RegistryConfig` of `/info` from berthd's `[registries]`: Docker Hub's mirrors as
//! `Mirrors` (what dockerd's `registry-mirrors` are), and an `IndexConfigs` entry per
//! configured registry, insecure ones with `Secure: false` (the docker CLI lists those
//! under "Insecure Registries").

use berth_image::reference::DEFAULT_REGISTRY as HUB;
use serde_json::{json, Value};

use crate::config::Config;

/// A mirror as dockerd shows one: a URL ending in `/` (`https://mirror:5000/`).
fn mirror_url(m: &str) -> String {
    format!("{}/", m.trim_end_matches('/'))
}

pub fn registry_config(config: &Config) -> Value {
    // The mirrors with the scheme berth uses for them (https unless the registry is
    // configured insecure, or as the URL says).
    let client = crate::registry::registry_config(config, None);
    let mirrors = |host: &str| -> Vec<String> {
        client
            .host(host)
            .mirrors
            .iter()
            .map(|m| mirror_url(m))
            .collect()
    };
    let mut index = serde_json::Map::new();
    index.insert(
        HUB.into(),
        json!({
            "Name": HUB,
            "Mirrors": mirrors(HUB),
            "Secure": !config.registries.get(HUB).is_some_and(|r| r.insecure),
            "Official": true,
        }),
    );
    for (host, registry) in config.registries.iter().filter(|(h, _)| *h != HUB) {
        index.insert(
            host.clone(),
            json!({
                "Name": host,
                "Mirrors": mirrors(host),
                "Secure": !registry.insecure,
                "Official": false,
            }),
        );
    }
    json!({
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        // berth talks plain HTTP to loopback registries without an entry, as Docker.
        "InsecureRegistryCIDRs": ["127.0.0.0/8"],
        "IndexConfigs": index,
        "Mirrors": mirrors(HUB),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_mirrors_become_mirrors_and_insecure_hosts_are_listed() -> Result<(), toml::de::Error> {
        let config: Config = toml::from_str(
            r#"
            [registries."docker.io"]
            mirrors = ["mirror.example:5000", "http://127.0.0.1:5999/"]
            [registries."127.0.0.1:5000"]
            insecure = true
            mirrors = ["127.0.0.1:5001"]
            "#,
        )?;
        let v = registry_config(&config);
        assert_eq!(
            v["Mirrors"],
            json!(["https://mirror.example:5000/", "http://127.0.0.1:5999/"])
        );
        assert_eq!(v["IndexConfigs"]["docker.io"]["Mirrors"], v["Mirrors"]);
        assert_eq!(v["IndexConfigs"]["docker.io"]["Secure"], true);
        assert_eq!(
            v["IndexConfigs"]["127.0.0.1:5000"],
            json!({"Name": "127.0.0.1:5000", "Mirrors": ["http://127.0.0.1:5001/"], "Secure": false, "Official": false})
        );
        let empty = registry_config(&Config::default());
        assert_eq!(empty["Mirrors"], json!([]));
        Ok(())
    }
}
