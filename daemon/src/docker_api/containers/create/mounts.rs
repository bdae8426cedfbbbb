//! Docker's mounts in berth's terms: `-v` (`Binds`), `--mount` (`Mounts`) and
//! `--tmpfs`, parsed and checked as Docker checks them.

use std::collections::BTreeMap;
use std::path::Path;

use berth_engine::config::{Mount, MountKind, Propagation, VolumeCreate};
use berth_engine::container_spec::{clean_path as clean, SpecError};
use serde::Deserialize;
use serde_json::Value;

/// One `HostConfig.Mounts` entry (`--mount`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// `consistent`, `cached`, `delegated`: Docker Desktop's, without effect on Linux.
    pub consistency: String,
    pub bind_options: Option<BindOptions>,
    pub volume_options: Option<Value>,
    pub tmpfs_options: Option<TmpfsOptions>,
    /// Fields berth does not know; refused by name.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    pub propagation: String,
    pub non_recursive: bool,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: i64,
    /// The directory's mode bits, as a number (Go's `os.FileMode`).
    pub mode: u32,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// What a `-v` mode string (`ro,rslave,z`) asks for.
struct Mode {
    read_only: bool,
    propagation: Option<Propagation>,
    nocopy: bool,
}

/// Docker's check of a `-v` mode: known words, at most one of each kind.
fn parse_mode(mode: &str) -> Option<Mode> {
    let mut out = Mode {
        read_only: false,
        propagation: None,
        nocopy: false,
    };
    if mode.is_empty() {
        return Some(out);
    }
    // rw/ro, z/Z, propagation, nocopy, consistency: each kind at most once.
    let mut kinds = [0u8; 5];
    for word in mode.split(',') {
        let kind = match word {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            p if Propagation::parse(p).is_some() => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return None,
        };
        kinds[kind] += 1;
        if word == "ro" {
            out.read_only = true;
        }
        if word == "nocopy" {
            out.nocopy = true;
        }
        if kind == 2 {
            out.propagation = Propagation::parse(word);
        }
    }
    kinds.iter().all(|n| *n <= 1).then_some(out)
}

/// Checks a mount's target as Docker does; `kind` names the mount type in the error.
fn check_target(kind: &str, target: &str) -> Result<(), String> {
    let err = |why: String| Err(format!("invalid mount config for type {kind:?}: {why}"));
    if target.is_empty() {
        return err("field Target must not be empty".into());
    }
    if clean(target) == "/" {
        return err("invalid specification: destination can't be '/'".into());
    }
    if !target.starts_with('/') {
        return err(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        ));
    }
    Ok(())
}

/// An anonymous volume at `destination` (`-v /path`, `Config.Volumes`, an image's
/// `VOLUME`), made by the engine's create.
pub fn anonymous_volume(destination: &str, read_only: bool, nocopy: bool) -> Mount {
    Mount {
        destination: clean(destination),
        kind: MountKind::Volume {
            name: None,
            read_only,
            nocopy,
            source: String::new(),
            create: Default::default(),
        },
    }
}

/// `Config.Volumes` (`{"/data": {}}`, the docker CLI's `-v /data`): anonymous volumes
/// at absolute paths.
pub fn config_volumes(volumes: &BTreeMap<String, Value>) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for path in volumes.keys() {
        check_target("volume", path).map_err(SpecError::Mount)?;
        out.push(anonymous_volume(path, false, false));
    }
    Ok(out)
}

/// `-v host:container[:mode]` binds (their missing sources are made at start),
/// `-v name:container[:mode]` named volumes (made on first use) and `-v /container`
/// anonymous volumes. A volume's mode may be `ro`/`rw` and `nocopy`; a propagation is
/// refused (Docker applies none to volumes).
pub fn binds(binds: &[String]) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for raw in binds {
        let invalid = || SpecError::Mount(format!("invalid volume specification: '{raw}'"));
        if raw.matches(':').count() > 2 || raw.starts_with(':') || raw.is_empty() {
            return Err(invalid());
        }
        let parts: Vec<&str> = raw.splitn(3, ':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => {
                check_target("volume", target).map_err(|e| {
                    SpecError::Mount(format!("invalid volume specification: '{raw}': {e}"))
                })?;
                out.push(anonymous_volume(target, false, false));
                continue;
            }
            // `/foo:rw` is a destination with a mode, not a bind.
            [_, m] if parse_mode(m).is_some() => return Err(invalid()),
            [s, t] => (*s, *t, ""),
            [s, t, m] => (*s, *t, *m),
            _ => return Err(invalid()),
        };
        let mode =
            parse_mode(mode).ok_or_else(|| SpecError::Mount(format!("invalid mode: {mode}")))?;
        if !source.starts_with('/') {
            check_target("volume", target).map_err(|e| {
                SpecError::Mount(format!("invalid volume specification: '{raw}': {e}"))
            })?;
            if mode.propagation.is_some() {
                return Err(SpecError::Mount(format!(
                    "invalid volume specification: '{raw}': a propagation mode is not applied to volumes"
                )));
            }
            out.push(Mount {
                destination: clean(target),
                kind: MountKind::Volume {
                    name: Some(source.to_string()),
                    read_only: mode.read_only,
                    nocopy: mode.nocopy,
                    source: String::new(),
                    create: Default::default(),
                },
            });
            continue;
        }
        if mode.nocopy {
            return Err(SpecError::Mount(format!(
                "invalid volume specification: '{raw}': nocopy applies to volumes, not to binds"
            )));
        }
        check_target("bind", target)
            .map_err(|e| SpecError::Mount(format!("invalid volume specification: '{raw}': {e}")))?;
        out.push(Mount {
            destination: clean(target),
            kind: MountKind::Bind {
                source: clean(source),
                read_only: mode.read_only,
                recursive: true,
                propagation: mode.propagation.unwrap_or_default(),
                create_source: true,
            },
        });
    }
    Ok(out)
}

/// `--mount` entries: `bind` (the source must exist) and `tmpfs`. Volumes are refused
/// until the volumes issue lands; so is every field berth does not apply.
pub fn mounts(specs: &[MountSpec]) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for m in specs {
        let kind = m.kind.as_str();
        let err = |why: String| {
            SpecError::Mount(format!("invalid mount config for type {kind:?}: {why}"))
        };
        let unknown = |fields: &BTreeMap<String, Value>, under: &str| -> Result<(), SpecError> {
            match fields.iter().find(|(_, v)| !v.is_null()) {
                Some((k, _)) => Err(err(format!("field {under}{k} is not supported by berth"))),
                None => Ok(()),
            }
        };
        unknown(&m.other, "")?;
        if !matches!(
            m.consistency.as_str(),
            "" | "default" | "consistent" | "cached" | "delegated"
        ) {
            return Err(err(format!("invalid consistency {:?}", m.consistency)));
        }
        check_target(kind, &m.target).map_err(SpecError::Mount)?;
        match kind {
            "bind" => {
                if m.source.is_empty() {
                    return Err(err("field Source must not be empty".into()));
                }
                let opts = m.bind_options.clone().unwrap_or_default();
                unknown(&opts.other, "BindOptions.")?;
                let propagation = match opts.propagation.as_str() {
                    "" => Some(Propagation::default()),
                    p => Propagation::parse(p),
                };
                let Some(propagation) = propagation else {
                    return Err(err(format!(
                        "invalid propagation mode: {}",
                        opts.propagation
                    )));
                };
                if m.volume_options.is_some() {
                    return Err(err("field VolumeOptions must not be specified".into()));
                }
                if m.tmpfs_options.is_some() {
                    return Err(err("field TmpfsOptions must not be specified".into()));
                }
                if !m.source.starts_with('/') {
                    return Err(err(format!(
                        "invalid mount path: '{}' mount path must be absolute",
                        m.source
                    )));
                }
                if !Path::new(&m.source).exists() {
                    return Err(err(format!(
                        "bind source path does not exist: {}",
                        m.source
                    )));
                }
                out.push(Mount {
                    destination: clean(&m.target),
                    kind: MountKind::Bind {
                        source: clean(&m.source),
                        read_only: m.read_only,
                        recursive: !opts.non_recursive,
                        propagation,
                        create_source: false,
                    },
                });
            }
            "tmpfs" => {
                if m.bind_options.is_some() {
                    return Err(err("field BindOptions must not be specified".into()));
                }
                if m.volume_options.is_some() {
                    return Err(err("field VolumeOptions must not be specified".into()));
                }
                if !m.source.is_empty() {
                    return Err(err("field Source must not be specified".into()));
                }
                let opts = m.tmpfs_options.clone().unwrap_or_default();
                unknown(&opts.other, "TmpfsOptions.")?;
                if opts.size_bytes < 0 {
                    return Err(err(format!(
                        "invalid tmpfs size {}: it must not be negative",
                        opts.size_bytes
                    )));
                }
                let mut data = Vec::new();
                if m.read_only {
                    data.push("ro".to_string());
                }
                if opts.mode != 0 {
                    data.push(format!("mode={:o}", opts.mode));
                }
                if opts.size_bytes != 0 {
                    data.push(format!("size={}", size_with_suffix(opts.size_bytes)));
                }
                out.push(Mount {
                    destination: clean(&m.target),
                    kind: MountKind::Tmpfs { options: data },
                });
            }
            "volume" => {
                if m.bind_options.is_some() {
                    return Err(err("field BindOptions must not be specified".into()));
                }
                if m.tmpfs_options.is_some() {
                    return Err(err("field TmpfsOptions must not be specified".into()));
                }
                let (nocopy, create) = volume_options(m.volume_options.as_ref()).map_err(err)?;
                out.push(Mount {
                    destination: clean(&m.target),
                    kind: MountKind::Volume {
                        name: (!m.source.is_empty()).then(|| m.source.clone()),
                        read_only: m.read_only,
                        nocopy,
                        source: String::new(),
                        create,
                    },
                });
            }
            _ => return Err(err("mount type unknown".into())),
        }
    }
    Ok(out)
}

/// `VolumeOptions` of a `--mount type=volume`: `NoCopy`, and what a volume made by
/// this mount is made with (`Labels`, the local driver's `DriverConfig.Options`);
/// another driver is refused by name.
fn volume_options(opts: Option<&Value>) -> Result<(bool, VolumeCreate), String> {
    let Some(Value::Object(opts)) = opts else {
        return Ok((false, VolumeCreate::default()));
    };
    let strings = |v: &Value, field: &str| -> Result<BTreeMap<String, String>, String> {
        match v {
            Value::Null => Ok(BTreeMap::new()),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(s) => Ok((k.clone(), s.to_string())),
                    None => Err(format!("field VolumeOptions.{field}.{k} must be a string")),
                })
                .collect(),
            _ => Err(format!("field VolumeOptions.{field} must be an object")),
        }
    };
    let mut nocopy = false;
    let mut create = VolumeCreate::default();
    for (k, v) in opts {
        match k.as_str() {
            "NoCopy" => nocopy = v.as_bool().unwrap_or(false),
            "Labels" => create.labels = strings(v, "Labels")?,
            "DriverConfig" => {
                let name = v["Name"].as_str().unwrap_or_default();
                if !name.is_empty() && name != "local" {
                    return Err(format!(
                        "field VolumeOptions.DriverConfig: volume driver {name:?} is not supported (berth has only the local driver)"
                    ));
                }
                create.options = strings(&v["Options"], "DriverConfig.Options")?;
            }
            _ if v.is_null() => {}
            other => {
                return Err(format!(
                    "field VolumeOptions.{other} is not supported by berth yet"
                ))
            }
        }
    }
    Ok((nocopy, create))
}

/// A tmpfs size as Docker writes it: in the largest of g, m, k that divides it.
fn size_with_suffix(size: i64) -> String {
    for (suffix, unit) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if size % unit == 0 {
            return format!("{}{suffix}", size / unit);
        }
    }
    size.to_string()
}

/// `--tmpfs /path:opts` (`HostConfig.Tmpfs`).
pub fn tmpfs(entries: &BTreeMap<String, String>) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for (destination, opts) in entries {
        if !destination.starts_with('/') {
            return Err(SpecError::Mount(format!(
                "tmpfs {destination:?}: the path must be absolute"
            )));
        }
        out.push(Mount {
            destination: destination.clone(),
            kind: MountKind::Tmpfs {
                options: opts
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The mounts as written into `config.json`.
    fn js(mounts: Vec<Mount>) -> Vec<Value> {
        mounts
            .iter()
            .filter_map(|m| serde_json::to_value(berth_engine::container_spec::user_mount(m)).ok())
            .collect()
    }

    fn err_of(r: Result<Vec<Mount>, SpecError>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    fn specs(v: Value) -> Vec<MountSpec> {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn binds_parse_like_dockers_volume_flag() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = binds(&strings(&[
            "/nonexistent/src:/data:ro,rslave",
            "/h:/c/../d",
        ]))
        .ok()
        .map(js);
        assert_eq!(
            ok,
            Some(vec![
                json!({"destination": "/data", "type": "bind", "source": "/nonexistent/src", "options": ["rbind", "ro", "rslave"]}),
                json!({"destination": "/d", "type": "bind", "source": "/h", "options": ["rbind", "rw", "rprivate"]}),
            ])
        );
        for (raw, expected) in [
            ("/a:/b:/c:/d", "invalid volume specification: '/a:/b:/c:/d'"),
            ("/foo:rw", "invalid volume specification: '/foo:rw'"),
            ("/a:/b:bogus", "invalid mode: bogus"),
            ("/a:/b:ro,rw", "invalid mode: ro,rw"),
            (
                "/tmp:relative",
                "invalid volume specification: '/tmp:relative': invalid mount config for type \"bind\": invalid mount path: 'relative' mount path must be absolute",
            ),
            (
                "/tmp:/",
                "invalid volume specification: '/tmp:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'",
            ),
            ("vol:/data:rshared", "a propagation mode is not applied to volumes"),
            ("/h:/data:nocopy", "nocopy applies to volumes"),
            ("data", "mount path must be absolute"),
        ] {
            let err = err_of(binds(&strings(&[raw])));
            assert!(err.contains(expected), "{raw}: {err}");
        }
    }

    #[test]
    fn mount_binds_need_an_existing_source() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().display().to_string();
        assert_eq!(
            err_of(mounts(&specs(json!([{"Type": "bind", "Source": "/nonexistent/x", "Target": "/x"}])))),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/x"
        );
        let ok = mounts(&specs(
            json!([{"Type": "bind", "Source": src, "Target": "/x", "ReadOnly": true,
            "BindOptions": {"Propagation": "rshared", "NonRecursive": true}}]),
        ))
        .ok()
        .map(js);
        assert_eq!(
            ok,
            Some(vec![
                json!({"destination": "/x", "type": "bind", "source": src, "options": ["bind", "ro", "rshared"]})
            ])
        );
        for (m, expected) in [
            (json!({"Type": "bind", "Source": src, "Target": "x"}), "invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute"),
            (json!({"Type": "bind", "Target": "/x"}), "invalid mount config for type \"bind\": field Source must not be empty"),
            (json!({"Type": "bind", "Source": src}), "invalid mount config for type \"bind\": field Target must not be empty"),
            (json!({"Type": "bind", "Source": src, "Target": "/x", "BindOptions": {"Propagation": "weird"}}), "invalid propagation mode: weird"),
            (json!({"Type": "bind", "Source": src, "Target": "/x", "BindOptions": {"CreateMountpoint": true}}), "field BindOptions.CreateMountpoint is not supported by berth"),
            (json!({"Type": "bind", "Source": src, "Target": "/x", "VolumeOptions": {}}), "field VolumeOptions must not be specified"),
            (json!({"Type": "tmpfs", "Source": src, "Target": "/x"}), "invalid mount config for type \"tmpfs\": field Source must not be specified"),
            (json!({"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Labels": {"a": 1}}}), "field VolumeOptions.Labels.a must be a string"),
            (json!({"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Foo": 1}}), "field VolumeOptions.Foo is not supported by berth yet"),
            (json!({"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}}), "volume driver \"nfs\" is not supported"),
            (json!({"Type": "volume", "Source": "v", "Target": "/x", "BindOptions": {}}), "field BindOptions must not be specified"),
            (json!({"Type": "npipe", "Source": src, "Target": "/x"}), "invalid mount config for type \"npipe\": mount type unknown"),
        ] {
            let err = err_of(mounts(&specs(json!([m.clone()]))));
            assert!(err.contains(expected), "{m}: {err}");
        }
        Ok(())
    }

    #[test]
    fn volumes_from_binds_mounts_and_config() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let vol = |name: Option<&str>, dest: &str, read_only: bool, nocopy: bool| Mount {
            destination: dest.into(),
            kind: MountKind::Volume {
                name: name.map(str::to_string),
                read_only,
                nocopy,
                source: String::new(),
                create: Default::default(),
            },
        };
        assert_eq!(
            binds(&strings(&["db:/data:ro,nocopy", "/anon/", "cache:/c"])).ok(),
            Some(vec![
                vol(Some("db"), "/data", true, true),
                vol(None, "/anon", false, false),
                vol(Some("cache"), "/c", false, false),
            ])
        );
        assert_eq!(
            mounts(&specs(json!([
                {"Type": "volume", "Source": "db", "Target": "/d", "ReadOnly": true,
                 "VolumeOptions": {"NoCopy": true, "DriverConfig": {"Name": "local"}}},
                {"Type": "volume", "Target": "/e"}
            ])))
            .ok(),
            Some(vec![
                vol(Some("db"), "/d", true, true),
                vol(None, "/e", false, false)
            ])
        );
        let config: BTreeMap<String, Value> = [("/x/".to_string(), json!({}))].into();
        assert_eq!(
            config_volumes(&config).ok(),
            Some(vec![vol(None, "/x", false, false)])
        );
        let bad: BTreeMap<String, Value> = [("x".to_string(), json!({}))].into();
        assert!(config_volumes(&bad).is_err());
    }

    #[test]
    fn mount_tmpfs_takes_size_and_mode() {
        let ok = mounts(&specs(json!([{"Type": "tmpfs", "Target": "/t",
            "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1777}}])))
        .ok()
        .map(js);
        assert_eq!(
            ok,
            Some(vec![
                json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                "options": ["noexec", "nosuid", "nodev", "mode=1777", "size=1m"]})
            ])
        );
        assert_eq!(size_with_suffix(3 << 30), "3g");
        assert_eq!(size_with_suffix(1000), "1000");
    }
}
