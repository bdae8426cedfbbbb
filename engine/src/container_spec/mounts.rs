//! The container's mounts as OCI mounts: binds and tmpfs from the config, over the
//! default mounts. A bind's missing source, when the config asks for it, is made at
//! start ([`create_bind_sources`]), as dockerd does for `-v`.

use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::runtime::{Mount, Spec};

use super::{Container, SpecError};
use crate::config::{self, ContainerConfig, MountKind};

/// An OCI mount.
pub fn oci_mount(destination: &str, typ: &str, source: &str, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options));
    m
}

/// The OCI mount of one of the config's mounts.
pub fn user_mount(m: &config::Mount) -> Mount {
    match &m.kind {
        MountKind::Bind {
            source,
            read_only,
            recursive,
            propagation,
            create_source: _,
        } => {
            let options = [
                if *recursive { "rbind" } else { "bind" },
                if *read_only { "ro" } else { "rw" },
                propagation.as_str(),
            ];
            oci_mount(
                &m.destination,
                "bind",
                source,
                options.iter().map(|o| o.to_string()).collect(),
            )
        }
        MountKind::Tmpfs { options: opts } => {
            let mut options = vec![
                "noexec".to_string(),
                "nosuid".to_string(),
                "nodev".to_string(),
            ];
            for opt in opts.iter().filter(|o| !o.is_empty()) {
                let flip = match opt.as_str() {
                    "exec" => Some("noexec"),
                    "suid" => Some("nosuid"),
                    "dev" => Some("nodev"),
                    _ => None,
                };
                match flip {
                    Some(off) => options.retain(|o| o != off),
                    None => options.push(opt.clone()),
                }
            }
            oci_mount(&m.destination, "tmpfs", "tmpfs", options)
        }
        MountKind::Volume {
            read_only, source, ..
        } => oci_mount(
            &m.destination,
            "bind",
            source,
            vec![
                "rbind".into(),
                if *read_only { "ro" } else { "rw" }.into(),
                "rprivate".into(),
            ],
        ),
    }
}

/// The config's mounts; one on a default destination (say, a tmpfs on /dev/shm)
/// replaces the default.
pub(super) fn with_user_mounts(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    for m in &c.config().mounts {
        if let MountKind::Volume { source, name, .. } = &m.kind {
            if source.is_empty() {
                return Err(SpecError::Mount(format!(
                    "the volume {} at {} has no data directory (the engine's create resolves volumes)",
                    name.as_deref().unwrap_or("(anonymous)"),
                    m.destination
                )));
            }
        }
    }
    let user_mounts: Vec<Mount> = c.config().mounts.iter().map(user_mount).collect();
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

/// `path.Clean` for absolute paths: no `.`, `..` or repeated slashes.
pub fn clean_path(p: &str) -> String {
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

/// The sources of the binds whose missing source is made at start.
pub fn bind_sources(config: &ContainerConfig) -> Vec<String> {
    config
        .mounts
        .iter()
        .filter_map(|m| match &m.kind {
            MountKind::Bind {
                source,
                create_source: true,
                ..
            } => Some(source.clone()),
            _ => None,
        })
        .collect()
}

/// Makes each missing bind source in `sources` as a directory (0755), as dockerd does
/// when it starts a container. A path that exists (or runs into a file) is left as it
/// is; the mount then says what is wrong with it.
pub fn create_bind_sources(sources: &[String]) -> Result<(), SpecError> {
    use std::os::unix::fs::DirBuilderExt;
    for source in sources {
        let path = Path::new(source);
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
    use super::*;

    #[test]
    fn missing_bind_sources_are_made_at_start_and_files_are_left_alone() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let new = dir.path().join("a/b");
        let file = dir.path().join("f");
        std::fs::write(&file, "x")?;
        let sources = vec![new.display().to_string(), file.display().to_string()];
        assert!(create_bind_sources(&sources).is_ok());
        assert!(new.is_dir());
        assert!(file.is_file());
        let under_file = vec![format!("{}/sub", file.display())];
        assert!(
            create_bind_sources(&under_file).is_ok(),
            "ENOTDIR is left to the mount"
        );
        Ok(())
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
