//! Pulls from Debian's docker-registry on loopback: plain HTTP, TLS + basic auth, bearer
//! tokens; the multi-layer whiteout image (compared with `umoci unpack`), zstd,
//! uncompressed, Docker schema 2, the two-platform index; mirrors.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Result};
use berth_fixtures::{images, Registry};
use berth_image::pull::{LayerState, Progress};
use berth_image::registry::RegistryConfig;
use berth_image::{Platform, PullError, PullOptions, RegistryError};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_fixture_images_and_matches_umoci() -> Result<()> {
    berth_fixtures::require_root();
    let layouts = tempfile::tempdir()?;
    let reg = Registry::start()?;
    let multi = images::multi_layer(&layouts.path().join("multi"))?;
    reg.push(&multi, "test/multi:1")?;
    let store = Store::new()?;
    let puller = store.puller(plain(&reg.host()))?;
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s2 = seen.clone();
    let opts = PullOptions {
        progress: Some(Arc::new(move |p: &Progress| {
            s2.lock().unwrap().push(p.clone())
        })),
        ..PullOptions::default()
    };
    let rec = puller.pull(&reg.image_ref("test/multi:1"), &opts).await?;
    assert_eq!(rec.manifest_digest.to_string(), multi.manifest_digest);
    assert_eq!(rec.layers.len(), 3);
    let done: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.state == LayerState::Done)
        .cloned()
        .collect();
    assert_eq!(done.len(), 3, "one Done report per layer");
    assert!(done.iter().all(|p| p.done == p.total));
    let stored = store.images.get(&format!("{}/test/multi:1", reg.host()))?;
    assert_eq!(stored.as_ref(), Some(&rec));

    // Our overlay view against umoci's unpack of the same layout.
    let chain = rec.chain_id.clone().expect("layers").to_string();
    let view = mount_view(&store, &chain, "view-multi")?;
    let bundle = tempfile::tempdir()?;
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{}", multi.layout.display(), multi.ref_name))
        .arg(bundle.path().join("b"))
        .output()?;
    ensure!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = tree(&view.target)?;
    let theirs = tree(&bundle.path().join("b/rootfs"))?;
    drop(view);
    let only_ours: Vec<_> = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(v))
        .collect();
    let only_theirs: Vec<_> = theirs
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(v))
        .collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "trees differ:\nberth: {only_ours:#?}\numoci: {only_theirs:#?}"
    );
    assert!(
        ours.len() > 50,
        "busybox tree compared: {} entries",
        ours.len()
    );
    assert!(ours.contains_key("data/keep.txt") && !ours.contains_key("data/gone.txt"));
    assert!(!ours.contains_key("opq/old.txt") && ours.contains_key("opq/new.txt"));

    // Pulling again downloads no layer.
    let again = puller
        .pull(&reg.image_ref("test/multi:1"), &PullOptions::default())
        .await?;
    assert_eq!(again.manifest_digest, rec.manifest_digest);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_zstd_uncompressed_docker_and_index() -> Result<()> {
    berth_fixtures::require_root();
    let layouts = tempfile::tempdir()?;
    let reg = Registry::start()?;
    let z = images::zstd(&layouts.path().join("z"))?;
    let u = images::uncompressed(&layouts.path().join("u"))?;
    let d = images::docker_v2(&layouts.path().join("d"))?;
    let idx = images::multi_platform(&layouts.path().join("i"))?;
    reg.push(&z, "test/zstd:1")?;
    reg.push(&u, "test/plain:1")?;
    reg.push(&d, "test/docker:1")?;
    reg.push_index(&idx, "test/multi:1")?;
    let store = Store::new()?;
    let puller = store.puller(plain(&reg.host()))?;
    for (name, img) in [
        ("test/zstd:1", &z),
        ("test/plain:1", &u),
        ("test/docker:1", &d),
    ] {
        let rec = puller.pull(&reg.image_ref(name), &opts()).await?;
        assert_eq!(
            rec.manifest_digest.to_string(),
            img.manifest_digest,
            "{name}"
        );
        let view = mount_view(
            &store,
            &rec.chain_id.clone().expect("layers").to_string(),
            &format!("v-{name}"),
        )?;
        assert!(
            view.target.join("bin/busybox").is_file(),
            "{name}: busybox present"
        );
    }
    let amd = puller.pull(&reg.image_ref("test/multi:1"), &opts()).await?;
    let want_amd = idx.for_architecture("amd64").expect("amd64 in fixture");
    assert_eq!(amd.manifest_digest.to_string(), want_amd.manifest_digest);
    assert_eq!(
        amd.index_digest.as_ref().map(|d| d.to_string()),
        Some(idx.index_digest.clone())
    );
    let arm_opts = PullOptions {
        platform: "linux/arm64".parse::<Platform>()?,
        ..opts()
    };
    let arm = puller
        .pull(&reg.image_ref("test/multi:1"), &arm_opts)
        .await?;
    assert_eq!(
        arm.manifest_digest.to_string(),
        idx.for_architecture("arm64")
            .expect("arm64")
            .manifest_digest
    );
    let s390 = PullOptions {
        platform: "linux/s390x".parse::<Platform>()?,
        ..opts()
    };
    let err = puller
        .pull(&reg.image_ref("test/multi:1"), &s390)
        .await
        .expect_err("no s390x");
    assert!(
        err.to_string()
            .contains("no manifest for platform linux/s390x"),
        "{err}"
    );
    // Unknown tag: clear error, no record.
    let err = puller
        .pull(&reg.image_ref("test/zstd:nope"), &opts())
        .await
        .expect_err("unknown tag");
    assert!(
        matches!(
            err,
            PullError::Registry(RegistryError::ManifestUnknown { .. })
        ),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_basic_auth_and_tokens() -> Result<()> {
    berth_fixtures::require_root();
    let layouts = tempfile::tempdir()?;
    let img = images::base(&layouts.path().join("b"))?;
    for (kind, reg) in [
        ("basic", Registry::start_tls_auth("alice", "s3cret")?),
        ("token", Registry::start_token_auth("alice", "s3cret")?),
    ] {
        reg.push(&img, "test/base:1")?;
        let ca = reg.ca_pem().expect("tls registry has a CA").to_path_buf();
        let store = Store::new()?;
        let mut cfg = RegistryConfig::default();
        cfg.host_mut(&reg.host()).ca_certs.push(ca.clone());
        // Without credentials: a clear 401.
        let err = store
            .puller(cfg.clone())?
            .pull(&reg.image_ref("test/base:1"), &opts())
            .await
            .expect_err("no creds");
        assert!(
            err.to_string().contains("401") || err.to_string().contains("authentication"),
            "{kind}: {err}"
        );
        // Wrong password.
        let mut bad = cfg.clone();
        bad.host_mut(&reg.host()).username = Some("alice".into());
        bad.host_mut(&reg.host()).password = Some("wrong".into());
        let err = store
            .puller(bad)?
            .pull(&reg.image_ref("test/base:1"), &opts())
            .await
            .expect_err("bad creds");
        assert!(
            matches!(err, PullError::Registry(RegistryError::Unauthorized { .. })),
            "{kind}: {err}"
        );
        // Credentials from a docker config.json.
        let dc = layouts.path().join(format!("docker-{kind}.json"));
        let auth = base64_encode("alice:s3cret");
        std::fs::write(
            &dc,
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
        )?;
        let mut good = cfg.clone();
        good.docker_config = Some(dc);
        let rec = store
            .puller(good)?
            .pull(&reg.image_ref("test/base:1"), &opts())
            .await?;
        assert_eq!(
            rec.manifest_digest.to_string(),
            img.manifest_digest,
            "{kind}"
        );
        // Without the CA the TLS handshake fails clearly.
        let mut no_ca = RegistryConfig::default();
        no_ca.host_mut(&reg.host()).username = Some("alice".into());
        no_ca.host_mut(&reg.host()).password = Some("s3cret".into());
        let err = Store::new()?
            .puller(no_ca)?
            .pull(&reg.image_ref("test/base:1"), &opts())
            .await
            .expect_err("untrusted");
        assert!(
            matches!(err, PullError::Registry(RegistryError::Connect { .. })),
            "{kind}: {err}"
        );
    }
    Ok(())
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_with_and_without_fallback() -> Result<()> {
    berth_fixtures::require_root();
    let layouts = tempfile::tempdir()?;
    let img = images::base(&layouts.path().join("b"))?;
    let reg = Registry::start()?;
    reg.push(&img, "test/base:1")?;
    // A dead loopback port as the mirror.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead_port = dead.local_addr()?.port();
    drop(dead);
    let store = Store::new()?;

    let mut cfg = plain(&reg.host());
    cfg.host_mut(&reg.host()).mirrors = vec![format!("http://127.0.0.1:{dead_port}")];
    let rec = store
        .puller(cfg.clone())?
        .pull(&reg.image_ref("test/base:1"), &opts())
        .await?;
    assert_eq!(rec.manifest_digest.to_string(), img.manifest_digest);

    cfg.host_mut(&reg.host()).mirror_fallback = false;
    let err = Store::new()?
        .puller(cfg)?
        .pull(&reg.image_ref("test/base:1"), &opts())
        .await
        .expect_err("dead mirror");
    let msg = err.to_string();
    assert!(
        msg.contains("every mirror failed") && msg.contains(&dead_port.to_string()),
        "{msg}"
    );

    // A registry name that resolves nowhere, served only by its (loopback) mirror.
    let mut cfg = RegistryConfig::default();
    let h = cfg.host_mut("registry.invalid");
    h.mirrors = vec![format!("http://{}", reg.host())];
    h.mirror_fallback = false;
    let rec = Store::new()?
        .puller(cfg)?
        .pull("registry.invalid/test/base:1", &opts())
        .await?;
    assert_eq!(rec.name, "registry.invalid/test/base:1");
    Ok(())
}
