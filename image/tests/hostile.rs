//! Hostile registries: bad manifests, digest mismatches, oversized blobs, escaping tar
//! entries, dropped connections. Each is refused with a clear error, writes nothing
//! outside the store, leaves no image record, and the store stays usable.

mod common;

use anyhow::Result;
use berth_image::PullError;
use common::*;
use tar::EntryType;

type RawEntry<'a> = (&'a str, EntryType, &'a str, &'a [u8]);

fn good_layer() -> (Vec<u8>, String) {
    raw_layer(&[
        ("etc/", EntryType::Directory, "", b""),
        ("etc/hello", EntryType::Regular, "", b"hello\n"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_not_json_and_schema1() -> Result<()> {
    berth_fixtures::require_root();
    let fake = FakeRegistry::start()?;
    fake.route(
        "/v2/x/manifests/html",
        Canned::ok("text/html", b"<html>nope</html>".to_vec()),
    );
    fake.route(
        "/v2/x/manifests/old",
        Canned::ok(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            br#"{"schemaVersion":1,"fsLayers":[]}"#.to_vec(),
        ),
    );
    let store = Store::new()?;
    let puller = store.puller(plain(&fake.host()))?;
    let err = puller
        .pull(&format!("{}/x:html", fake.host()), &opts())
        .await
        .expect_err("html");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    let err = puller
        .pull(&format!("{}/x:old", fake.host()), &opts())
        .await
        .expect_err("schema1");
    assert!(err.to_string().contains("schema 1"), "{err}");
    assert!(store.images.list()?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_digest_mismatch_and_oversized_blob() -> Result<()> {
    berth_fixtures::require_root();
    let fake = FakeRegistry::start()?;
    let (blob, diff) = good_layer();
    // The manifest claims another digest than the blob served has.
    let wrong = berth_snapshotter::Digest::of(b"something else").to_string();
    fake.serve_image(
        "x",
        "mismatch",
        &[(blob.clone(), diff.clone())],
        Some(vec![(wrong.clone(), blob.len() as u64)]),
    );
    let store = Store::new()?;
    let puller = store.puller(plain(&fake.host()))?;
    let err = puller
        .pull(&format!("{}/x:mismatch", fake.host()), &opts())
        .await
        .expect_err("mismatch");
    let msg = format!(
        "{err}: {:?}",
        std::error::Error::source(&err).map(|s| s.to_string())
    );
    assert!(msg.contains("digest"), "{msg}");
    assert!(
        !store.content.contains(&wrong.parse()?),
        "nothing stored under the claimed digest"
    );

    // The blob is larger than the manifest declares (announced length too).
    let real = berth_snapshotter::Digest::of(&blob).to_string();
    fake.serve_image(
        "y",
        "big",
        &[(blob.clone(), diff.clone())],
        Some(vec![(real.clone(), blob.len() as u64 - 10)]),
    );
    let err = puller
        .pull(&format!("{}/y:big", fake.host()), &opts())
        .await
        .expect_err("too large");
    assert!(err.to_string().contains("larger than"), "{err}");

    // A wrong diff_id in the config.
    fake.serve_image(
        "z",
        "diff",
        &[(
            blob.clone(),
            berth_snapshotter::Digest::of(b"x").to_string(),
        )],
        None,
    );
    let err = puller
        .pull(&format!("{}/z:diff", fake.host()), &opts())
        .await
        .expect_err("diff id");
    assert!(format!("{err:?}").contains("DiffId"), "{err:?}");

    assert!(store.images.list()?.is_empty(), "no record after failures");
    assert!(
        store.snapshots.list().is_empty(),
        "no snapshot left: {:?}",
        store.snapshots.list()
    );
    assert_eq!(
        std::fs::read_dir(store.dir.path().join("content/ingest"))?.count(),
        0,
        "no temp blobs left"
    );
    // The store still works: the good image pulls.
    fake.serve_image("ok", "1", &[(blob, diff)], None);
    puller
        .pull(&format!("{}/ok:1", fake.host()), &opts())
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaping_tar_entries_refused() -> Result<()> {
    berth_fixtures::require_root();
    let outside = tempfile::tempdir()?;
    let target = outside.path().join("escaped");
    let fake = FakeRegistry::start()?;
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        (
            "dotdot",
            vec![(
                "../../../../../../../../tmp/escaped",
                EntryType::Regular,
                "",
                b"x",
            )],
        ),
        (
            "absolute",
            vec![(
                target.to_str().unwrap_or("/x"),
                EntryType::Regular,
                "",
                b"x",
            )],
        ),
        (
            "symlink",
            vec![
                (
                    "evil",
                    EntryType::Symlink,
                    outside.path().to_str().unwrap_or("/"),
                    b"",
                ),
                ("evil/escaped", EntryType::Regular, "", b"x"),
            ],
        ),
    ];
    let store = Store::new()?;
    let puller = store.puller(plain(&fake.host()))?;
    for (name, entries) in cases {
        let layer = raw_layer(&entries);
        fake.serve_image(name, "1", &[layer], None);
        let err = puller
            .pull(&format!("{}/{name}:1", fake.host()), &opts())
            .await
            .expect_err(name);
        assert!(matches!(err, PullError::Layer { .. }), "{name}: {err}");
        let chain = format!("{err:?}");
        assert!(
            chain.contains("Path"),
            "{name}: refused as a path escape: {chain}"
        );
        assert!(!target.exists(), "{name}: a file landed outside the store");
        assert!(!std::path::Path::new("/tmp/escaped").exists());
    }
    assert!(store.images.list()?.is_empty());
    assert!(store.snapshots.list().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_pull_resumes_only_what_is_missing() -> Result<()> {
    berth_fixtures::require_root();
    let fake = FakeRegistry::start()?;
    let one = good_layer();
    let two = raw_layer(&[("two", EntryType::Regular, "", &[7u8; 200_000][..])]);
    let paths = fake.serve_image("r", "1", &[one.clone(), two.clone()], None);
    // The second blob's connection drops halfway.
    let mut cut = Canned::ok(
        "application/octet-stream",
        two.0[..two.0.len() / 2].to_vec(),
    );
    cut.declared_len = Some(two.0.len());
    fake.route(&paths[1], cut);
    let store = Store::new()?;
    let puller = store.puller(plain(&fake.host()))?;
    let err = puller
        .pull(&format!("{}/r:1", fake.host()), &opts())
        .await
        .expect_err("dropped");
    assert!(
        store.images.get(&format!("{}/r:1", fake.host()))?.is_none(),
        "no record: {err}"
    );
    assert!(
        store
            .content
            .contains(&berth_snapshotter::Digest::of(&one.0)),
        "the complete layer's blob is kept"
    );
    // Fixed: the next pull downloads only the missing blob.
    fake.route(
        &paths[1],
        Canned::ok("application/octet-stream", two.0.clone()),
    );
    let before = fake.hits(&paths[0]);
    let rec = puller
        .pull(&format!("{}/r:1", fake.host()), &opts())
        .await?;
    assert_eq!(
        fake.hits(&paths[0]),
        before,
        "layer one not downloaded again"
    );
    let view = mount_view(
        &store,
        &rec.chain_id.clone().expect("layers").to_string(),
        "v",
    )?;
    assert_eq!(std::fs::read(view.target.join("etc/hello"))?, b"hello\n");
    assert_eq!(std::fs::metadata(view.target.join("two"))?.len(), 200_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_clear_status_errors() -> Result<()> {
    berth_fixtures::require_root();
    let fake = FakeRegistry::start()?;
    let status = |code: u16, body: &str| Canned {
        status: code,
        content_type: "application/json".into(),
        body: body.as_bytes().to_vec(),
        declared_len: None,
    };
    fake.route("/v2/x/manifests/busy", status(503, "{}"));
    fake.route("/v2/x/manifests/limited", status(429, "{}"));
    fake.route(
        "/v2/x/manifests/denied",
        status(
            403,
            r#"{"errors":[{"code":"DENIED","message":"no pull for you"}]}"#,
        ),
    );
    let store = Store::new()?;
    let puller = store.puller(plain(&fake.host()))?;
    let err = puller
        .pull(&format!("{}/x:busy", fake.host()), &opts())
        .await
        .expect_err("503");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(
        fake.hits("/v2/x/manifests/busy"),
        4,
        "retried with backoff, then gave up"
    );
    let err = puller
        .pull(&format!("{}/x:limited", fake.host()), &opts())
        .await
        .expect_err("429");
    assert!(
        matches!(
            err,
            PullError::Registry(berth_image::RegistryError::TooManyRequests { .. })
        ),
        "{err}"
    );
    let err = puller
        .pull(&format!("{}/x:denied", fake.host()), &opts())
        .await
        .expect_err("403");
    assert!(
        err.to_string().contains("403") && err.to_string().contains("no pull for you"),
        "{err}"
    );
    Ok(())
}
