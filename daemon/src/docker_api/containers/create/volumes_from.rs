//! `HostConfig.VolumesFrom` (`--volumes-from name[:ro|rw]`): another container's
//! volumes and mounts at the same paths, as dockerd takes them: its modes unless `ro`
//! asks for read-only, never filled from the image, overridden by this container's own
//! binds and mounts at the same destination.

use berth_engine::config::{Mount, MountKind};
use berth_engine::ContainerRecord;

/// `name[:mode]` → (container, read-only). The mode is `ro` or `rw` (an SELinux label
/// word may go with it); a propagation or `nocopy` is refused, as dockerd refuses them.
pub fn parse(spec: &str) -> Result<(String, bool), String> {
    if spec.is_empty() {
        return Err("volumes-from specification cannot be an empty string".into());
    }
    let (name, mode) = match spec.split_once(':') {
        None => (spec, ""),
        Some((n, m)) => (n, m),
    };
    if name.is_empty() || mode.contains(':') {
        return Err(format!("invalid volumes-from specification: {spec:?}"));
    }
    let mut read_only = false;
    let mut seen = [false; 2];
    for word in mode.split(',').filter(|w| !w.is_empty()) {
        let kind = match word {
            "ro" | "rw" => 0,
            "z" | "Z" => 1,
            _ => return Err(format!("invalid mode: {mode}")),
        };
        if std::mem::replace(&mut seen[kind], true) {
            return Err(format!("invalid mode: {mode}"));
        }
        read_only |= word == "ro";
    }
    Ok((name.to_string(), read_only))
}

/// The mounts a container takes from `source`: its volumes (by name, never copied up)
/// and binds with their modes, read-only where the source's are or `read_only` asks;
/// its `--mount type=tmpfs` as a new tmpfs of the same options. Records written before
/// berth kept mounts give their volumes only.
pub fn mounts_of(source: &ContainerRecord, read_only: bool) -> Vec<Mount> {
    if source.mounts.is_empty() {
        return source
            .volumes
            .iter()
            .map(|v| Mount {
                destination: v.destination.clone(),
                kind: MountKind::Volume {
                    name: Some(v.name.clone()),
                    read_only: v.read_only || read_only,
                    nocopy: true,
                    source: String::new(),
                    create: Default::default(),
                },
            })
            .collect();
    }
    source
        .mounts
        .iter()
        .filter(|m| !from_tmpfs_flag(source, m))
        .map(|m| {
            let kind = match &m.kind {
                MountKind::Bind {
                    source,
                    read_only: ro,
                    recursive,
                    propagation,
                    ..
                } => MountKind::Bind {
                    source: source.clone(),
                    read_only: *ro || read_only,
                    recursive: *recursive,
                    propagation: *propagation,
                    // The source container made it; this one binds what is there.
                    create_source: false,
                },
                MountKind::Volume {
                    name,
                    read_only: ro,
                    ..
                } => MountKind::Volume {
                    name: name.clone(),
                    read_only: *ro || read_only,
                    nocopy: true,
                    source: String::new(),
                    create: Default::default(),
                },
                MountKind::Tmpfs { options } => {
                    let mut options = options.clone();
                    if read_only && !options.iter().any(|o| o == "ro") {
                        options.push("ro".into());
                    }
                    MountKind::Tmpfs { options }
                }
            };
            Mount {
                destination: m.destination.clone(),
                kind,
            }
        })
        .collect()
}

/// A tmpfs from `--tmpfs` (`HostConfig.Tmpfs`): not one of dockerd's mount points, so
/// neither taken by `--volumes-from` nor listed in inspect's `Mounts`.
pub fn from_tmpfs_flag(record: &ContainerRecord, m: &Mount) -> bool {
    matches!(m.kind, MountKind::Tmpfs { .. })
        && record.request["HostConfig"]["Tmpfs"]
            .as_object()
            .is_some_and(|t| t.contains_key(&m.destination))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_dockerd_parses_them() {
        assert_eq!(parse("data"), Ok(("data".into(), false)));
        assert_eq!(parse("data:ro"), Ok(("data".into(), true)));
        assert_eq!(parse("data:rw,z"), Ok(("data".into(), false)));
        for (bad, expected) in [
            ("", "volumes-from specification cannot be an empty string"),
            ("data:rshared", "invalid mode: rshared"),
            ("data:nocopy", "invalid mode: nocopy"),
            ("data:ro,rw", "invalid mode: ro,rw"),
            ("data:ro:x", "invalid volumes-from specification"),
            (":ro", "invalid volumes-from specification"),
        ] {
            let err = parse(bad).err().unwrap_or_default();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }
}
