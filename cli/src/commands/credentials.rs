//! Registry credentials in docker's `config.json` format (`{"auths": {host: {"auth":
//! base64(user:password)}}}`), kept in `$DOCKER_CONFIG/config.json` when set, else
//! `~/.config/berth/config.json`; sent to the daemon as `X-Registry-Auth`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use serde_json::{json, Value};

/// Where credentials live.
pub fn config_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set: cannot find ~/.config/berth")?;
    Ok(PathBuf::from(home).join(".config/berth/config.json"))
}

/// The registry host of an image reference, as docker decides it: the first part
/// when it looks like a host (has `.` or `:`, or is `localhost`), else Docker Hub.
pub fn registry_of(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

/// The key docker uses for a registry in `auths`.
pub fn auth_key(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

fn read() -> Result<Value> {
    let path = config_path()?;
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write(v: &Value) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, serde_json::to_string_pretty(v)?.as_bytes())?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Stores credentials for `registry`.
pub fn store(registry: &str, username: &str, password: &str) -> Result<PathBuf> {
    let mut cfg = read()?;
    if !cfg["auths"].is_object() {
        cfg["auths"] = json!({});
    }
    cfg["auths"][auth_key(registry)] =
        json!({ "auth": STANDARD.encode(format!("{username}:{password}")) });
    write(&cfg)?;
    config_path()
}

/// Removes the credentials of `registry`; whether there were any.
pub fn erase(registry: &str) -> Result<bool> {
    let mut cfg = read()?;
    let removed = cfg["auths"]
        .as_object_mut()
        .is_some_and(|a| a.remove(&auth_key(registry)).is_some());
    if removed {
        write(&cfg)?;
    }
    Ok(removed)
}

/// Stored (username, password) for `registry`.
pub fn lookup(registry: &str) -> Result<Option<(String, String)>> {
    let cfg = read()?;
    let Some(entry) = cfg["auths"].get(auth_key(registry)) else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok(Some((u.to_string(), p.to_string())));
    }
    let Some(auth) = entry["auth"].as_str() else {
        return Ok(None);
    };
    let raw = STANDARD
        .decode(auth)
        .context("a stored auth is not base64")?;
    let text = String::from_utf8(raw).context("a stored auth is not UTF-8")?;
    Ok(text
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string())))
}

/// The `X-Registry-Auth` header for pulling or pushing `reference`.
pub fn header_for(reference: &str) -> Result<Vec<(&'static str, String)>> {
    let registry = registry_of(reference);
    Ok(match lookup(&registry)? {
        Some((u, p)) => {
            let doc = json!({ "username": u, "password": p, "serveraddress": registry });
            vec![("x-registry-auth", URL_SAFE.encode(doc.to_string()))]
        }
        None => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_of_references() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("me/app:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/a/b"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("reg.example/x"), "reg.example");
    }
}
