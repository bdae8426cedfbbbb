//! Copy-up: the image's content at a volume's destination copied into the volume
//! when it is empty, as Docker fills a new volume. Modes and owners are kept; links
//! are copied as links, never followed, so nothing outside the container's root
//! filesystem is read. A destination reached through a symlink in the image is
//! resolved inside the root filesystem, as the runtime resolves it to mount there.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors of a copy-up.
#[derive(Debug, thiserror::Error)]
#[error("copying {path} into the volume: {source}")]
pub struct CopyError {
    path: PathBuf,
    source: std::io::Error,
}

/// Fills the empty `volume` directory from `destination` inside `rootfs`, if the image
/// has a directory there. True when something was copied.
pub fn copy_up(rootfs: &Path, destination: &str, volume: &Path) -> Result<bool, CopyError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CopyError { path, source }
    };
    if std::fs::read_dir(volume)
        .map_err(err(volume))?
        .next()
        .is_some()
    {
        return Ok(false);
    }
    // The destination as the runtime will mount it: links in the image resolved
    // inside the root filesystem (an absolute one from the root, `..` stopping there),
    // never out of it.
    let src = berth_runtime::rootfs::paths::secure_join(rootfs, Path::new(destination));
    match std::fs::symlink_metadata(&src) {
        // Still a link: a loop (too many hops); nothing to fill from.
        Ok(m) if m.file_type().is_symlink() => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(&src)(e)),
    }
    let meta = std::fs::symlink_metadata(&src).map_err(err(&src))?;
    if !meta.is_dir() {
        return Ok(false);
    }
    copy_dir(&src, volume)?;
    // The volume's root takes the image directory's owner and mode, as Docker's.
    std::os::unix::fs::lchown(volume, Some(meta.uid()), Some(meta.gid())).map_err(err(volume))?;
    std::fs::set_permissions(
        volume,
        std::fs::Permissions::from_mode(meta.mode() & 0o7777),
    )
    .map_err(err(volume))?;
    Ok(true)
}

/// Copies the entries of `src` into the existing directory `dst`.
fn copy_dir(src: &Path, dst: &Path) -> Result<(), CopyError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CopyError { path, source }
    };
    for entry in std::fs::read_dir(src).map_err(err(src))? {
        let entry = entry.map_err(err(src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from).map_err(err(&from))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(err(&to))?;
            copy_dir(&from, &to)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(err(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(err(&to))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(err(&to))?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                nix::sys::stat::SFlag::S_IFIFO
            } else if ft.is_char_device() {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(
                &to,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(|e| err(&to)(std::io::Error::from(e)))?;
        } else {
            // A socket: nothing to copy.
            continue;
        }
        std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid())).map_err(err(&to))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(err(&to))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_an_empty_volume_and_leaves_a_used_one() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let rootfs = tmp.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("data/sub"))?;
        std::fs::write(rootfs.join("data/sub/f"), b"image")?;
        std::fs::set_permissions(
            rootfs.join("data/sub/f"),
            std::fs::Permissions::from_mode(0o640),
        )?;
        std::os::unix::fs::symlink("/etc/passwd", rootfs.join("data/link"))?;
        std::os::unix::fs::symlink("/etc", rootfs.join("etc-link"))?;
        let vol = tmp.path().join("vol");
        std::fs::create_dir(&vol)?;
        assert!(copy_up(&rootfs, "/data", &vol)?);
        assert_eq!(std::fs::read(vol.join("sub/f"))?, b"image");
        assert_eq!(std::fs::metadata(vol.join("sub/f"))?.mode() & 0o777, 0o640);
        assert_eq!(
            std::fs::read_link(vol.join("link"))?,
            Path::new("/etc/passwd")
        );
        // Not empty any more: left alone.
        std::fs::write(rootfs.join("data/new"), b"x")?;
        assert!(!copy_up(&rootfs, "/data", &vol)?);
        assert!(!vol.join("new").exists());
        // Missing in the image: nothing copied. A link to the host's /etc is the
        // image's /etc, which this image has not: nothing read from the host.
        let other = tmp.path().join("other");
        std::fs::create_dir(&other)?;
        assert!(!copy_up(&rootfs, "/nope", &other)?);
        assert!(!copy_up(&rootfs, "/etc-link", &other)?);
        assert!(std::fs::read_dir(&other)?.next().is_none());
        // Through links inside the image (a parent that is a link, absolute or
        // relative, with `..` stopping at the root): the image's directory.
        std::fs::create_dir_all(rootfs.join("var/lib/real"))?;
        std::fs::write(rootfs.join("var/lib/real/db"), b"rows")?;
        std::os::unix::fs::symlink("/var/lib", rootfs.join("srv"))?;
        std::os::unix::fs::symlink("../../../../var/lib/real", rootfs.join("var/alias"))?;
        std::os::unix::fs::symlink("loop", rootfs.join("loop"))?;
        for (destination, name) in [("/srv/real", "a"), ("/var/alias", "b")] {
            let vol = tmp.path().join(name);
            std::fs::create_dir(&vol)?;
            assert!(copy_up(&rootfs, destination, &vol)?, "{destination}");
            assert_eq!(std::fs::read(vol.join("db"))?, b"rows");
        }
        let looped = tmp.path().join("looped");
        std::fs::create_dir(&looped)?;
        assert!(!copy_up(&rootfs, "/loop", &looped)?);
        Ok(())
    }
}
