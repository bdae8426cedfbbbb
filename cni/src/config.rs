//! Network configuration: parsing `.conflist` / `.conf` / `.json` files and picking the
//! first usable one in lexical order from the conf dir, reloading when the dir changes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

/// CNI spec versions a config may declare.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

/// One plugin entry of a network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    /// The plugin binary's name (`type`).
    pub plugin_type: String,
    /// The plugin's JSON object, as written in the file.
    pub raw: Map<String, Value>,
}

impl PluginConf {
    /// True when the plugin declares `"capabilities": {"<cap>": true}`.
    pub fn has_capability(&self, cap: &str) -> bool {
        self.raw
            .get("capabilities")
            .and_then(|c| c.get(cap))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// A network configuration list (a single `.conf` becomes a list of one plugin).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub plugins: Vec<PluginConf>,
    /// The file it came from (empty when built in memory).
    pub source: PathBuf,
}

impl NetworkConfig {
    /// Parses a conflist (`plugins` array) or a single-plugin config (`type` at top level).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<NetworkConfig, ConfigError> {
        let invalid = |msg: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            msg,
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|source| ConfigError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let Value::Object(top) = value else {
            return Err(invalid("the top level is not a JSON object".into()));
        };
        let name = match top.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(invalid("missing or empty \"name\"".into())),
        };
        if name.contains('/') || name.contains('\0') || name.len() > 200 {
            return Err(invalid(format!(
                "network name {name:?} is not usable in a file name"
            )));
        }
        let cni_version = match top.get("cniVersion") {
            Some(Value::String(s)) => s.clone(),
            None => "0.1.0".to_string(),
            Some(_) => return Err(invalid("\"cniVersion\" is not a string".into())),
        };
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(invalid(format!(
                "unsupported cniVersion {cni_version:?} (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        let disable_check = match top.get("disableCheck") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let plugin_objs: Vec<Map<String, Value>> = match top.get("plugins") {
            Some(Value::Array(list)) => {
                let mut out = Vec::with_capacity(list.len());
                for (i, p) in list.iter().enumerate() {
                    match p {
                        Value::Object(m) => out.push(m.clone()),
                        _ => return Err(invalid(format!("plugins[{i}] is not an object"))),
                    }
                }
                out
            }
            Some(_) => return Err(invalid("\"plugins\" is not an array".into())),
            None if top.contains_key("type") => vec![top.clone()],
            None => {
                return Err(invalid(
                    "neither \"plugins\" nor \"type\" is present".into(),
                ))
            }
        };
        if plugin_objs.is_empty() {
            return Err(invalid("\"plugins\" is empty".into()));
        }
        let mut plugins = Vec::with_capacity(plugin_objs.len());
        for (i, raw) in plugin_objs.into_iter().enumerate() {
            let plugin_type = match raw.get("type") {
                Some(Value::String(t)) if valid_plugin_name(t) => t.clone(),
                Some(Value::String(t)) => {
                    return Err(invalid(format!("plugins[{i}]: bad plugin type {t:?}")))
                }
                _ => return Err(invalid(format!("plugins[{i}]: missing \"type\""))),
            };
            plugins.push(PluginConf { plugin_type, raw });
        }
        Ok(NetworkConfig {
            name,
            cni_version,
            disable_check,
            plugins,
            source: path.to_path_buf(),
        })
    }

    /// Reads and parses one file.
    pub fn load(path: &Path) -> Result<NetworkConfig, ConfigError> {
        let bytes = fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    /// Serialises the list back to JSON (cached with each attachment).
    pub fn to_json(&self) -> Value {
        let mut top = Map::new();
        top.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        top.insert("name".into(), Value::String(self.name.clone()));
        if self.disable_check {
            top.insert("disableCheck".into(), Value::Bool(true));
        }
        let plugins = self
            .plugins
            .iter()
            .map(|p| Value::Object(p.raw.clone()))
            .collect();
        top.insert("plugins".into(), Value::Array(plugins));
        Value::Object(top)
    }
}

fn valid_plugin_name(t: &str) -> bool {
    !t.is_empty() && t != "." && t != ".." && !t.contains('/') && !t.contains('\0')
}

/// Config files in the dir, in lexical order.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let ext_ok = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("conflist" | "conf" | "json")
        );
        if ext_ok && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// What a dir listing looked like: names, sizes and mtimes, to notice changes cheaply.
pub type DirSignature = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub fn dir_signature(dir: &Path) -> Result<DirSignature, ConfigError> {
    let files = config_files(dir)?;
    Ok(files
        .into_iter()
        .map(|p| {
            let meta = fs::metadata(&p).ok();
            let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let mtime = meta.and_then(|m| m.modified().ok());
            (p, len, mtime)
        })
        .collect())
}

/// The result of scanning the conf dir.
#[derive(Debug, Clone)]
pub enum Discovered {
    /// The first file that parsed; errors of skipped earlier files alongside.
    Found {
        config: Box<NetworkConfig>,
        skipped: Vec<String>,
    },
    /// No config files at all.
    Empty,
    /// Files exist but none is usable; one message per file.
    AllInvalid(Vec<String>),
}

pub fn discover(dir: &Path) -> Result<Discovered, ConfigError> {
    let files = config_files(dir)?;
    if files.is_empty() {
        return Ok(Discovered::Empty);
    }
    let mut errors = Vec::new();
    for f in files {
        match NetworkConfig::load(&f) {
            Ok(config) => {
                return Ok(Discovered::Found {
                    config: Box::new(config),
                    skipped: errors,
                });
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok(Discovered::AllInvalid(errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conflist_and_single_conf() -> anyhow::Result<()> {
        let list = br#"{"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"bridge","bridge":"b0"},
            {"type":"portmap","capabilities":{"portMappings":true}}]}"#;
        let c = NetworkConfig::parse(Path::new("x.conflist"), list)?;
        assert_eq!((c.name.as_str(), c.cni_version.as_str()), ("n", "1.0.0"));
        assert_eq!(c.plugins.len(), 2);
        assert!(c.plugins[1].has_capability("portMappings"));
        assert!(!c.plugins[0].has_capability("portMappings"));
        // Round trip through the cache form.
        let again =
            NetworkConfig::parse(Path::new("x.conflist"), c.to_json().to_string().as_bytes())?;
        assert_eq!(again.plugins, c.plugins);

        let single = br#"{"cniVersion":"0.3.1","name":"s","type":"bridge"}"#;
        let c = NetworkConfig::parse(Path::new("x.conf"), single)?;
        assert_eq!(c.plugins.len(), 1);
        assert_eq!(c.plugins[0].plugin_type, "bridge");
        Ok(())
    }

    #[test]
    fn rejects_bad_configs_with_reasons() {
        for (json, want) in [
            (&b"{"[..], "invalid JSON"),
            (
                br#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#,
                "name",
            ),
            (
                br#"{"cniVersion":"9.9.9","name":"n","plugins":[{"type":"x"}]}"#,
                "unsupported cniVersion",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
                "empty",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}"#,
                "bad plugin type",
            ),
        ] {
            match NetworkConfig::parse(Path::new("f"), json) {
                Ok(c) => panic!("accepted {c:?}"),
                Err(e) => assert!(e.to_string().contains(want), "{e} lacks {want}"),
            }
        }
    }

    #[test]
    fn discovery_picks_the_first_usable_file_in_lexical_order() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(matches!(discover(dir.path())?, Discovered::Empty));
        std::fs::write(dir.path().join("00-broken.conflist"), b"{")?;
        std::fs::write(dir.path().join("README"), b"not a config")?;
        assert!(matches!(discover(dir.path())?, Discovered::AllInvalid(e) if e.len() == 1));
        std::fs::write(
            dir.path().join("20-b.conf"),
            br#"{"cniVersion":"0.4.0","name":"b","type":"bridge"}"#,
        )?;
        std::fs::write(
            dir.path().join("10-a.json"),
            br#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"ptp"}]}"#,
        )?;
        match discover(dir.path())? {
            Discovered::Found { config, skipped } => {
                assert_eq!(config.name, "a");
                assert_eq!(skipped.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }
}
