//! Push, tag and remove: images berth pushes are read back by skopeo; shared layers stay
//! until the last image using them is removed.

mod common;

use anyhow::Result;
use berth_fixtures::{images, Registry};
use berth_image::push::push;
use berth_image::Client;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_tag_remove() -> Result<()> {
    berth_fixtures::require_root();
    let layouts = tempfile::tempdir()?;
    let multi = images::multi_layer(&layouts.path().join("m"))?;
    let user = images::with_user(&layouts.path().join("u"), "www-data")?;
    let reg = Registry::start()?;
    reg.push(&multi, "src/multi:1")?;
    reg.push(&user, "src/user:1")?;
    let store = Store::new()?;
    let puller = store.puller(plain(&reg.host()))?;
    let rec = puller.pull(&reg.image_ref("src/multi:1"), &opts()).await?;
    let client = Client::new(plain(&reg.host()))?;

    // Same registry, other repository: blobs are mounted, not uploaded.
    let r1 = push(
        &client,
        &store.content,
        &rec,
        &reg.image_ref("dst/multi:v1"),
    )
    .await?;
    assert_eq!(r1.mounted.len(), 4, "3 layers + config mounted: {r1:?}");
    let raw = reg.inspect_raw("dst/multi:v1")?;
    assert_eq!(
        berth_snapshotter::Digest::of(&raw).to_string(),
        multi.manifest_digest,
        "skopeo reads the same manifest"
    );
    let cfg = reg.inspect_config("dst/multi:v1")?;
    assert_eq!(
        cfg["rootfs"]["diff_ids"].as_array().map(|a| a.len()),
        Some(3)
    );
    // Again: every blob is already there.
    let r2 = push(
        &client,
        &store.content,
        &rec,
        &reg.image_ref("dst/multi:v2"),
    )
    .await?;
    assert_eq!(r2.skipped.len(), 4, "{r2:?}");

    // A registry that has none of the blobs: real uploads; skopeo copies it back out.
    let reg2 = Registry::start()?;
    let mut cfg2 = plain(&reg.host());
    cfg2.host_mut(&reg2.host()).insecure = true;
    let client2 = Client::new(cfg2)?;
    let r3 = push(
        &client2,
        &store.content,
        &rec,
        &reg2.image_ref("copy/multi:1"),
    )
    .await?;
    assert_eq!(r3.uploaded.len(), 4, "{r3:?}");
    let out = tempfile::tempdir()?;
    reg2.pull_to_dir("copy/multi:1", &out.path().join("d"))?;
    assert!(out.path().join("d/manifest.json").is_file());

    // Tag and refcounted remove.
    let other = puller.pull(&reg.image_ref("src/user:1"), &opts()).await?;
    store.images.tag(&rec.name, "local/multi:tagged")?;
    store.images.remove(&rec.name)?;
    assert_eq!(
        store.images.gc(&store.content, &store.snapshots)?,
        (0, 0),
        "still tagged: nothing freed"
    );
    assert!(store
        .snapshots
        .exists(&rec.chain_id.clone().expect("layers").to_string()));
    store.images.remove("local/multi:tagged")?;
    // The pull by tag also named the image by its digest, as Docker's pull does.
    let digest_ref = rec.digest_ref().expect("a tagged pull");
    assert_eq!(
        store.images.gc(&store.content, &store.snapshots)?,
        (0, 0),
        "still known by digest: nothing freed"
    );
    store.images.remove(&digest_ref)?;
    let (blobs, snaps) = store.images.gc(&store.content, &store.snapshots)?;
    assert!(
        blobs >= 5 && snaps == 3,
        "multi: manifest, config, 3 layers and 3 snapshots freed: {blobs} {snaps}"
    );
    // The busybox base layer is shared with the user image? Only if identical; the user
    // image's own chain must survive in any case.
    assert!(store
        .snapshots
        .exists(&other.chain_id.clone().expect("layers").to_string()));
    assert!(store.content.contains(&other.config_digest));
    Ok(())
}
