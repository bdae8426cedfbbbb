//! Overlay snapshots: prepare/view/commit/remove/usage, crash leftovers, and a 128-layer
//! image mounted for real.

use std::collections::HashSet;
use std::fs;

use anyhow::Result;
use berth_snapshotter::mount::unmount;
use berth_snapshotter::{Kind, SnapshotError, Snapshotter};

#[test]
fn prepare_commit_view_remove() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    let sn = Snapshotter::open(dir.path())?;
    let m = sn.prepare("extract-1", None)?;
    assert_eq!(m[0].kind, "bind");
    fs::write(sn.fs_path("extract-1")?.join("a"), "base\n")?;
    sn.commit_layer("sha256:l1", "extract-1", None)?;
    assert_eq!(sn.stat("sha256:l1")?.kind, Kind::Committed);
    assert!(matches!(
        sn.stat("extract-1"),
        Err(SnapshotError::NotFound(_))
    ));

    sn.prepare("extract-2", None)?;
    fs::write(sn.fs_path("extract-2")?.join("b"), "top\n")?;
    sn.commit_layer("sha256:l2", "extract-2", Some("sha256:l1"))?;

    let mounts = sn.prepare("container", Some("sha256:l2"))?;
    let m = &mounts[0];
    assert_eq!(m.kind, "overlay");
    assert_eq!(m.lowerdirs().len(), 2);
    let target = dir.path().join("rootfs");
    fs::create_dir(&target)?;
    m.mount(&target)?;
    let seen = (
        fs::read_to_string(target.join("a")),
        fs::read_to_string(target.join("b")),
    );
    fs::write(target.join("c"), "written\n")?;
    unmount(&target)?;
    assert_eq!(seen.0?, "base\n");
    assert_eq!(seen.1?, "top\n");
    assert_eq!(
        fs::read_to_string(sn.fs_path("container")?.join("c"))?,
        "written\n"
    );
    assert!(sn.usage("container")?.inodes >= 2);

    // Read-only view.
    let v = sn.view("view", Some("sha256:l2"))?;
    v[0].mount(&target)?;
    let ro = fs::write(target.join("x"), "x");
    let a = fs::read_to_string(target.join("a"));
    unmount(&target)?;
    assert!(ro.is_err(), "view is read-only");
    assert_eq!(a?, "base\n");

    // Parents with children cannot go; a removed snapshot's directory is gone.
    assert!(matches!(
        sn.remove("sha256:l2"),
        Err(SnapshotError::HasChildren { .. })
    ));
    assert!(matches!(
        sn.prepare("container", None),
        Err(SnapshotError::Exists(_))
    ));
    assert!(matches!(
        sn.prepare("x", Some("container")),
        Err(SnapshotError::ParentNotCommitted { .. })
    ));
    let cdir = sn.fs_path("container")?;
    sn.remove("container")?;
    sn.remove("view")?;
    assert!(!cdir.exists());

    // Reopen: state survives; an orphan directory (crash before metadata) is removed.
    fs::create_dir_all(dir.path().join("snapshots/999/fs"))?;
    drop(sn);
    let sn = Snapshotter::open(dir.path())?;
    assert_eq!(sn.list().len(), 2);
    assert!(!dir.path().join("snapshots/999").exists());
    let removed = sn.gc(&HashSet::from(["sha256:l1".to_string()]))?;
    assert_eq!(removed, vec!["sha256:l2".to_string()]);
    Ok(())
}

#[test]
fn many_layers_mount() -> Result<()> {
    berth_fixtures::require_root();
    // A long root path so 128 lowerdirs are far past one page of mount options.
    let dir = tempfile::tempdir()?;
    let root = dir
        .path()
        .join("a-rather-long-directory-name-for-the-berth-root");
    let sn = Snapshotter::open(&root)?;
    let mut parent: Option<String> = None;
    for i in 0..128 {
        let key = format!("extract-{i}");
        sn.prepare(&key, None)?;
        fs::write(sn.fs_path(&key)?.join(format!("f{i}")), format!("{i}\n"))?;
        fs::write(sn.fs_path(&key)?.join("top"), format!("{i}\n"))?;
        let name = format!("sha256:layer{i}");
        sn.commit_layer(&name, &key, parent.as_deref())?;
        parent = Some(name);
    }
    let mounts = sn.prepare("c", parent.as_deref())?;
    let opts = mounts[0].options.join(",");
    assert!(opts.len() > 4096, "test must exceed a page: {}", opts.len());
    let target = dir.path().join("rootfs");
    fs::create_dir(&target)?;
    mounts[0].mount(&target)?;
    let first = fs::read_to_string(target.join("f0"));
    let last = fs::read_to_string(target.join("f127"));
    let top = fs::read_to_string(target.join("top"));
    unmount(&target)?;
    assert_eq!(first?, "0\n");
    assert_eq!(last?, "127\n");
    assert_eq!(top?, "127\n", "the last layer is on top");
    Ok(())
}

/// A layer's size as Docker reports it: apparent sizes of files and symlinks (their
/// target's length), hard links once, directories and empty files nothing.
#[test]
fn diff_size_counts_like_docker() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sn = Snapshotter::open(dir.path())?;
    sn.prepare("extract", None)?;
    let fs_dir = sn.fs_path("extract")?;
    fs::create_dir_all(fs_dir.join("bin/sub"))?;
    fs::write(fs_dir.join("bin/busybox"), vec![7u8; 10_000])?;
    fs::hard_link(fs_dir.join("bin/busybox"), fs_dir.join("bin/sh"))?;
    std::os::unix::fs::symlink("busybox", fs_dir.join("bin/ls"))?; // 7 bytes
    fs::write(fs_dir.join("bin/sub/empty"), "")?;
    fs::write(fs_dir.join("etc-passwd"), "root:x:0:0::/root:/bin/sh\n")?; // 26 bytes
    sn.commit_layer("sha256:layer", "extract", None)?;
    assert_eq!(sn.diff_size("sha256:layer")?, 10_000 + 7 + 26);
    assert!(matches!(
        sn.diff_size("sha256:nope"),
        Err(SnapshotError::NotFound(_))
    ));
    Ok(())
}
