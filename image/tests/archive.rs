//! save/load round trips (OCI layout and docker-save forms, checked with skopeo and
//! umoci-free file checks) and import of a rootfs tarball.

mod common;

use std::fs;
use std::process::Command;

use anyhow::{ensure, Result};
use berth_fixtures::{images, Registry};
use berth_image::archive::{load, save};
use berth_image::import::import;
use berth_image::Platform;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_load_round_trip() -> Result<()> {
    berth_fixtures::require_root();
    let layouts = tempfile::tempdir()?;
    let multi = images::multi_layer(&layouts.path().join("m"))?;
    let reg = Registry::start()?;
    reg.push(&multi, "test/multi:1")?;
    let store = Store::new()?;
    let rec = store
        .puller(plain(&reg.host()))?
        .pull(&reg.image_ref("test/multi:1"), &opts())
        .await?;
    let out = tempfile::tempdir()?;
    let archive = out.path().join("img.tar");
    save(
        &store.content,
        std::slice::from_ref(&rec),
        fs::File::create(&archive)?,
    )?;

    // skopeo reads it both as an OCI archive and as a docker archive.
    for transport in ["oci-archive", "docker-archive"] {
        let o = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("{transport}:{}", archive.display()))
            .output()?;
        ensure!(
            o.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", archive.display()))
        .output()?;
    assert_eq!(
        berth_snapshotter::Digest::of(&o.stdout),
        rec.manifest_digest
    );

    // Load into a fresh store: same record, mountable.
    let fresh = Store::new()?;
    let loaded = load(
        &fresh.content,
        &fresh.snapshots,
        &fresh.images,
        fs::File::open(&archive)?,
        &Platform::default(),
    )?;
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].manifest_digest, rec.manifest_digest);
    assert_eq!(loaded[0].chain_id, rec.chain_id);
    let view = mount_view(
        &fresh,
        &rec.chain_id.clone().expect("layers").to_string(),
        "v",
    )?;
    assert_eq!(fs::read(view.target.join("opq/new.txt"))?, b"new\n");
    drop(view);

    // A docker-save archive written by skopeo (legacy layer.tar layout) loads too.
    let legacy = out.path().join("legacy.tar");
    let o = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:{}", multi.layout.display(), multi.ref_name))
        .arg(format!(
            "docker-archive:{}:example.com/legacy:1",
            legacy.display()
        ))
        .output()?;
    ensure!(
        o.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let other = Store::new()?;
    let l = load(
        &other.content,
        &other.snapshots,
        &other.images,
        fs::File::open(&legacy)?,
        &Platform::default(),
    )?;
    assert_eq!(l[0].name, "example.com/legacy:1");
    assert_eq!(
        l[0].diff_ids, rec.diff_ids,
        "same layers: {:?} vs {:?}",
        l[0], rec
    );
    assert_eq!(l[0].chain_id, rec.chain_id, "same layers, same chain");
    Ok(())
}

#[test]
fn import_rootfs_tarball() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    let rootfs = dir.path().join("rootfs");
    berth_fixtures::busybox_rootfs(&rootfs)?;
    let tarball = dir.path().join("rootfs.tar.gz");
    let o = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .output()?;
    ensure!(
        o.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let store = Store::new()?;
    let rec = import(
        &store.content,
        &store.snapshots,
        &store.images,
        &tarball,
        "local/imported:1",
        &Platform::default(),
        None,
    )?;
    assert_eq!(rec.name, "docker.io/local/imported:1");
    assert_eq!(
        rec.layers[0].media_type,
        berth_image::manifest::OCI_LAYER_GZIP
    );
    let view = mount_view(
        &store,
        &rec.chain_id.clone().expect("one layer").to_string(),
        "v",
    )?;
    assert!(view.target.join("bin/busybox").is_file());
    assert!(fs::read_to_string(view.target.join("etc/passwd"))?.contains("www-data"));
    Ok(())
}
