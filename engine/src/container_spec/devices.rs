//! Host devices given to the container (`docker run --device`): each a device node in
//! the container (OCI `linux.devices`, made by the runtime) and an allow rule in its
//! device cgroup, found on the host as dockerd finds them: a symlink is followed, a
//! directory gives every device node under it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Spec};

use super::{linux_mut, Container, SpecError};
use crate::config::Device;

/// `linux.devices` and their device cgroup rules, after the default rules
/// (`resources::with_resources` sets those).
pub(super) fn with_devices(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let config = c.config();
    if config.devices.is_empty() {
        return Ok(());
    }
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for d in &config.devices {
        for (node, rule) in host_devices(d)? {
            nodes.push(node);
            rules.push(rule);
        }
    }
    let linux = linux_mut(spec);
    let mut all = linux.devices().clone().unwrap_or_default();
    all.extend(nodes);
    linux.set_devices(Some(all));
    if let Some(resources) = linux.resources_mut() {
        let mut all = resources.devices().clone().unwrap_or_default();
        all.extend(rules);
        resources.set_devices(Some(all));
    }
    Ok(())
}

fn invalid(d: &Device, why: impl std::fmt::Display) -> SpecError {
    SpecError::Device(format!(
        "error gathering device information while adding custom device {:?}: {why}",
        d.host_path
    ))
}

/// The device nodes `d` names on the host, with their cgroup rules.
pub fn host_devices(d: &Device) -> Result<Vec<(LinuxDevice, LinuxDeviceCgroup)>, SpecError> {
    let access = if d.permissions.is_empty() {
        "rwm"
    } else {
        d.permissions.as_str()
    };
    if !access.chars().all(|c| "rwm".contains(c)) {
        return Err(SpecError::Device(format!(
            "invalid device permissions {:?} for {:?}: only the letters r, w and m",
            d.permissions, d.host_path
        )));
    }
    let container_path = if d.container_path.is_empty() {
        d.host_path.as_str()
    } else {
        d.container_path.as_str()
    };
    if !container_path.starts_with("/dev/") || container_path.split('/').any(|p| p == "..") {
        return Err(SpecError::Device(format!(
            "device path in the container {container_path:?} must be under /dev (berth makes device nodes only there)"
        )));
    }
    // A link is followed once, as dockerd does; the node itself is read with lstat.
    let host = Path::new(&d.host_path);
    let resolved = match std::fs::symlink_metadata(host) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(host).unwrap_or_else(|_| host.to_path_buf())
        }
        _ => host.to_path_buf(),
    };
    let meta = std::fs::symlink_metadata(&resolved).map_err(|e| invalid(d, io_text(&e)))?;
    if let Some(node) = node(&meta, container_path, access) {
        return Ok(vec![node]);
    }
    if !meta.is_dir() {
        return Err(invalid(d, "not a device node"));
    }
    let mut found = Vec::new();
    walk(&resolved, &mut |path, meta| {
        let rel = path.strip_prefix(&resolved).unwrap_or(path);
        let inside = Path::new(container_path).join(rel);
        if let Some(node) = node(meta, &inside.to_string_lossy(), access) {
            found.push(node);
        }
    });
    if found.is_empty() {
        return Err(invalid(d, "not a device node"));
    }
    Ok(found)
}

/// Go's wording for the common errors (dockerd's message ends with it).
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Every entry under `dir`, links not followed; unreadable entries are skipped, as
/// dockerd skips them.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, f);
        } else {
            f(&path, &meta);
        }
    }
}

/// The OCI device and its cgroup rule for a character or block device node.
fn node(
    meta: &std::fs::Metadata,
    container_path: &str,
    access: &str,
) -> Option<(LinuxDevice, LinuxDeviceCgroup)> {
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return None;
    };
    let rdev = meta.rdev();
    let (major, minor) = (
        nix::sys::stat::major(rdev) as i64,
        nix::sys::stat::minor(rdev) as i64,
    );
    let mut device = LinuxDevice::default();
    device.set_path(container_path.into());
    device.set_typ(typ);
    device.set_major(major);
    device.set_minor(minor);
    device.set_file_mode(Some(meta.mode() & 0o777));
    device.set_uid(Some(meta.uid()));
    device.set_gid(Some(meta.gid()));
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_typ(Some(typ));
    rule.set_major(Some(major));
    rule.set_minor(Some(minor));
    rule.set_access(Some(access.to_string()));
    Some((device, rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(host: &str, inside: &str, perms: &str) -> Device {
        Device {
            host_path: host.into(),
            container_path: inside.into(),
            permissions: perms.into(),
        }
    }

    #[test]
    fn a_host_node_becomes_a_node_and_a_rule() -> Result<(), SpecError> {
        let found = host_devices(&device("/dev/null", "/dev/xnull", "rw"))?;
        assert_eq!(found.len(), 1);
        let (node, rule) = &found[0];
        assert_eq!(node.path(), Path::new("/dev/xnull"));
        assert_eq!(
            (node.typ(), node.major(), node.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert_eq!(node.file_mode(), Some(0o666));
        assert!(rule.allow());
        assert_eq!((rule.major(), rule.minor()), (Some(1), Some(3)));
        assert_eq!(rule.access().as_deref(), Some("rw"));
        // No container path: the host's; no permissions: rwm.
        let (node, rule) = &host_devices(&device("/dev/zero", "", ""))?[0];
        assert_eq!(node.path(), Path::new("/dev/zero"));
        assert_eq!(rule.access().as_deref(), Some("rwm"));
        Ok(())
    }

    #[test]
    fn what_is_not_a_device_is_refused_by_path() -> std::io::Result<()> {
        let err = |d: Device| host_devices(&d).err().map(|e| e.to_string());
        assert_eq!(
            err(device("/dev/nope", "/dev/nope", "rwm")).as_deref(),
            Some("error gathering device information while adding custom device \"/dev/nope\": no such file or directory")
        );
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("plain");
        std::fs::write(&file, "x")?;
        let file = file.to_string_lossy().to_string();
        assert!(err(device(&file, "/dev/x", "")).is_some_and(|e| e.ends_with("not a device node")));
        // A directory without device nodes gives nothing, which is refused.
        let dir_path = dir.path().to_string_lossy().to_string();
        assert!(
            err(device(&dir_path, "/dev/x", "")).is_some_and(|e| e.contains("not a device node"))
        );
        assert!(err(device("/dev/null", "/tmp/null", "")).is_some_and(|e| e.contains("under /dev")));
        assert!(err(device("/dev/null", "/dev/null", "rwx")).is_some_and(|e| e.contains("\"rwx\"")));
        Ok(())
    }

    #[test]
    fn a_directory_gives_the_nodes_under_it_and_a_link_is_followed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::os::unix::fs::symlink("/dev/null", dir.path().join("link"))?;
        // The link itself is not a node (links under a directory are not followed);
        // a link named directly is.
        let link = dir.path().join("link").to_string_lossy().to_string();
        let found = host_devices(&device(&link, "/dev/l", "")).map_err(std::io::Error::other)?;
        assert_eq!(found[0].0.major(), 1);
        let found = host_devices(&device("/dev/pts", "/dev/hostpts", "r"))
            .map_err(std::io::Error::other)?;
        assert!(!found.is_empty());
        assert!(found
            .iter()
            .all(|(n, _)| n.path().starts_with("/dev/hostpts/")));
        Ok(())
    }
}
