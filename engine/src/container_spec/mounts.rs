//! The user's mounts as OCI mounts: `-v` (`Binds`), `--mount` (`Mounts`) and `--tmpfs`,
//! parsed and checked as Docker checks them. A `-v` bind's missing source is made at
//! start ([`create_bind_sources`]), as dockerd does; a `--mount` bind's source must exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use oci_spec::runtime::{Mount, Spec};
use serde::Deserialize;
use serde_json::Value;

use super::{Container, SpecError};

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

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];

/// What a `-v` mode string (`ro,rslave,z`) asks for.
struct Mode {
    read_only: bool,
    propagation: Option<String>,
}

/// Docker's check of a `-v` mode: known words, at most one of each kind.
fn parse_mode(mode: &str) -> Option<Mode> {
    let mut out = Mode {
        read_only: false,
        propagation: None,
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
            p if PROPAGATIONS.contains(&p) => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return None,
        };
        kinds[kind] += 1;
        if word == "ro" {
            out.read_only = true;
        }
        if kind == 2 {
            out.propagation = Some(word.to_string());
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

/// `path.Clean` for absolute paths: no `.`, `..` or repeated slashes.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// An OCI mount.
pub fn oci_mount(destination: &str, typ: &str, source: &str, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options));
    m
}

fn bind_mount(source: &str, destination: &str, recursive: bool, ro: bool, prop: &str) -> Mount {
    let options = [
        if recursive { "rbind" } else { "bind" },
        if ro { "ro" } else { "rw" },
        prop,
    ];
    oci_mount(
        destination,
        "bind",
        source,
        options.iter().map(|o| o.to_string()).collect(),
    )
}

/// The request's `-v`, `--tmpfs` and `--mount` mounts; one on a default destination
/// (say, a tmpfs on /dev/shm) replaces the default.
pub(super) fn with_user_mounts(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let hc = c.host_config();
    let user_mounts: Vec<Mount> = binds(hc.binds.as_deref().unwrap_or_default())?
        .into_iter()
        .chain(tmpfs(hc.tmpfs.clone().unwrap_or_default().into_iter())?)
        .chain(mounts(hc.mounts.as_deref().unwrap_or_default())?)
        .collect();
    check_duplicates(&user_mounts)?;
    let mut all = spec.mounts().clone().unwrap_or_default();
    all.retain(|m| {
        !user_mounts
            .iter()
            .any(|u| u.destination() == m.destination())
    });
    all.extend(user_mounts);
    spec.set_mounts(Some(all));
    Ok(())
}

/// `-v host:container[:mode]` binds. Named and anonymous volumes arrive with the
/// volumes issue; until then they are refused by name rather than silently made.
pub fn binds(binds: &[String]) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for raw in binds {
        let invalid = || SpecError::Mount(format!("invalid volume specification: '{raw}'"));
        if raw.matches(':').count() > 2 || raw.starts_with(':') || raw.is_empty() {
            return Err(invalid());
        }
        let parts: Vec<&str> = raw.splitn(3, ':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [_] => {
                return Err(SpecError::Mount(format!(
                    "bind {raw:?}: anonymous volumes are not supported yet; bind a host path (/host/dir:{raw})"
                )))
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
            return Err(SpecError::Mount(format!(
                "bind {raw:?}: named volumes are not supported yet; use an absolute host path"
            )));
        }
        check_target("bind", target)
            .map_err(|e| SpecError::Mount(format!("invalid volume specification: '{raw}': {e}")))?;
        let propagation = mode.propagation.as_deref().unwrap_or("rprivate");
        out.push(bind_mount(
            &clean(source),
            &clean(target),
            true,
            mode.read_only,
            propagation,
        ));
    }
    Ok(out)
}

/// The sources of `-v` binds (the ones dockerd makes when missing).
pub fn bind_sources(binds: &[String]) -> Vec<String> {
    binds
        .iter()
        .filter_map(|b| b.split(':').next())
        .filter(|s| s.starts_with('/'))
        .map(clean)
        .collect()
}

/// Makes each missing `-v` bind source as a directory (0755), as dockerd does when it
/// starts a container. A path that exists (or runs into a file) is left as it is; the
/// mount then says what is wrong with it.
pub fn create_bind_sources(binds: &[String]) -> Result<(), SpecError> {
    use std::os::unix::fs::DirBuilderExt;
    for source in bind_sources(binds) {
        let path = Path::new(&source);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
        {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
            Err(e) => {
                return Err(SpecError::Mount(format!(
                    "error while creating mount source path '{source}': mkdir {source}: {e}"
                )))
            }
        }
    }
    Ok(())
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
                if !opts.propagation.is_empty()
                    && !PROPAGATIONS.contains(&opts.propagation.as_str())
                {
                    return Err(err(format!(
                        "invalid propagation mode: {}",
                        opts.propagation
                    )));
                }
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
                let propagation = match opts.propagation.as_str() {
                    "" => "rprivate",
                    p => p,
                };
                out.push(bind_mount(
                    &clean(&m.source),
                    &clean(&m.target),
                    !opts.non_recursive,
                    m.read_only,
                    propagation,
                ));
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
                out.extend(tmpfs(std::iter::once((clean(&m.target), data.join(","))))?);
            }
            "volume" => {
                return Err(err(
                    "volumes are not supported yet; use type=bind with a host path or type=tmpfs"
                        .into(),
                ))
            }
            _ => return Err(err("mount type unknown".into())),
        }
    }
    Ok(out)
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

/// `--tmpfs /path:opts`: noexec, nosuid, nodev unless the options say otherwise.
pub fn tmpfs(entries: impl Iterator<Item = (String, String)>) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for (destination, opts) in entries {
        if !destination.starts_with('/') {
            return Err(SpecError::Mount(format!(
                "tmpfs {destination:?}: the path must be absolute"
            )));
        }
        let mut options = vec![
            "noexec".to_string(),
            "nosuid".to_string(),
            "nodev".to_string(),
        ];
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            let flip = match opt {
                "exec" => Some("noexec"),
                "suid" => Some("nosuid"),
                "dev" => Some("nodev"),
                _ => None,
            };
            match flip {
                Some(off) => options.retain(|o| o != off),
                None => options.push(opt.to_string()),
            }
        }
        out.push(oci_mount(&destination, "tmpfs", "tmpfs", options));
    }
    Ok(out)
}

/// Refuses two user mounts on one destination, as Docker does.
pub fn check_duplicates(mounts: &[Mount]) -> Result<(), SpecError> {
    let mut seen = BTreeSet::new();
    for m in mounts {
        let dest = m.destination();
        if !seen.insert(dest) {
            return Err(SpecError::Mount(format!(
                "Duplicate mount point: {}",
                dest.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The mounts as written into `config.json`.
    fn js(mounts: Vec<Mount>) -> Vec<Value> {
        mounts
            .iter()
            .filter_map(|m| serde_json::to_value(m).ok())
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
            ("vol:/data", "named volumes are not supported yet"),
            ("/data", "anonymous volumes are not supported yet"),
        ] {
            let err = err_of(binds(&strings(&[raw])));
            assert!(err.contains(expected), "{raw}: {err}");
        }
    }

    #[test]
    fn missing_bind_sources_are_made_at_start_and_files_are_left_alone() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let new = dir.path().join("a/b");
        let file = dir.path().join("f");
        std::fs::write(&file, "x")?;
        let binds = vec![
            format!("{}:/x", new.display()),
            format!("{}:/y:ro", file.display()),
        ];
        assert!(create_bind_sources(&binds).is_ok());
        assert!(new.is_dir());
        assert!(file.is_file());
        let under_file = vec![format!("{}/sub:/z", file.display())];
        assert!(
            create_bind_sources(&under_file).is_ok(),
            "ENOTDIR is left to the mount"
        );
        Ok(())
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
            (json!({"Type": "volume", "Source": "v", "Target": "/x"}), "volumes are not supported yet"),
            (json!({"Type": "npipe", "Source": src, "Target": "/x"}), "invalid mount config for type \"npipe\": mount type unknown"),
        ] {
            let err = err_of(mounts(&specs(json!([m.clone()]))));
            assert!(err.contains(expected), "{m}: {err}");
        }
        Ok(())
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

    #[test]
    fn two_mounts_on_one_destination_are_refused() {
        let m = |d: &str| oci_mount(d, "bind", "/src", Vec::new());
        assert!(check_duplicates(&[m("/a"), m("/b")]).is_ok());
        let err = check_duplicates(&[m("/a"), m("/b"), m("/a")])
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("Duplicate mount point: /a"));
    }
}
