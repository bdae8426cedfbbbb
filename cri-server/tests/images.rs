//! ImageService against Debian's docker-registry on loopback, through the Rust CRI client
//! over the server's unix socket.

mod common;

use anyhow::{Context, Result};
use common::{Env, Server};
use k8s_cri::v1 as cri;

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

#[test]
fn pull_list_status_remove_by_tag_digest_and_id() -> Result<()> {
    berth_fixtures::require_root();
    let img_dir = tempfile::tempdir()?;
    let user_img = berth_fixtures::images::with_user(img_dir.path(), "www-data")?;
    let registry = berth_fixtures::Registry::start()?;
    let tagged = registry.push(&user_img, "cri/user:v1")?;
    let by_digest = format!("{}/cri/user@{}", registry.host(), user_img.manifest_digest);

    let mut env = Env::new("bcrimg0", "10.252.0.0/24")?;
    env.registry.host_mut(&registry.host()).insecure = true;
    let server = Server::start(&env)?;
    let mut images = server.images()?;

    // Unknown image: no error, no image.
    let st = server.block_on(images.image_status(cri::ImageStatusRequest {
        image: spec(&tagged),
        verbose: false,
    }))?;
    assert!(st.into_inner().image.is_none());

    let pulled = server.block_on(images.pull_image(cri::PullImageRequest {
        image: spec(&tagged),
        ..Default::default()
    }))?;
    let id = pulled.into_inner().image_ref;
    assert_eq!(id, user_img.config_digest);
    // By digest: the same image, now also known by its repo digest.
    server.block_on(images.pull_image(cri::PullImageRequest {
        image: spec(&by_digest),
        ..Default::default()
    }))?;

    let list = server
        .block_on(images.list_images(cri::ListImagesRequest::default()))?
        .into_inner();
    assert_eq!(list.images.len(), 1, "{list:?}");
    let image = &list.images[0];
    assert_eq!(image.id, id);
    assert_eq!(image.repo_tags, vec![tagged.clone()]);
    assert_eq!(
        image.repo_digests,
        vec![format!(
            "{}/cri/user@{}",
            registry.host(),
            user_img.manifest_digest
        )]
    );
    assert_eq!(image.username, "www-data");
    assert!(image.size > 0);

    let short_id = &id["sha256:".len().."sha256:".len() + 12];
    for reference in [tagged.as_str(), by_digest.as_str(), id.as_str(), short_id] {
        let st = server
            .block_on(images.image_status(cri::ImageStatusRequest {
                image: spec(reference),
                verbose: true,
            }))?
            .into_inner();
        let found = st
            .image
            .with_context(|| format!("image {reference} not found"))?;
        assert_eq!(found.id, id, "{reference}");
        let info: serde_json::Value =
            serde_json::from_str(st.info.get("info").context("verbose info")?)?;
        assert_eq!(info["imageSpec"]["config"]["User"], "www-data");
    }
    // Filtered list.
    let filtered = server
        .block_on(images.list_images(cri::ListImagesRequest {
            filter: Some(cri::ImageFilter {
                image: spec(&tagged),
            }),
        }))?
        .into_inner();
    assert_eq!(filtered.images.len(), 1);
    let none = server
        .block_on(images.list_images(cri::ListImagesRequest {
            filter: Some(cri::ImageFilter {
                image: spec(&format!("{}/cri/other:v1", registry.host())),
            }),
        }))?
        .into_inner();
    assert!(none.images.is_empty());

    let fs = server
        .block_on(images.image_fs_info(cri::ImageFsInfoRequest {}))?
        .into_inner();
    let usage = fs.image_filesystems.first().context("image filesystem")?;
    assert!(
        usage.used_bytes.context("bytes")?.value > 1_000_000,
        "busybox is unpacked: {usage:?}"
    );
    assert!(usage.inodes_used.context("inodes")?.value > 10);

    // Remove by id removes every name; again is fine.
    server.block_on(images.remove_image(cri::RemoveImageRequest { image: spec(&id) }))?;
    server.block_on(images.remove_image(cri::RemoveImageRequest { image: spec(&id) }))?;
    let list = server
        .block_on(images.list_images(cri::ListImagesRequest::default()))?
        .into_inner();
    assert!(list.images.is_empty());
    let fs = server
        .block_on(images.image_fs_info(cri::ImageFsInfoRequest {}))?
        .into_inner();
    let after = fs.image_filesystems[0].used_bytes.context("bytes")?.value;
    assert!(after < 1_000_000, "layers freed after removal: {after}");

    // Bad references are InvalidArgument.
    let err = server
        .block_on(images.pull_image(cri::PullImageRequest {
            image: spec("UPPER/Case::x"),
            ..Default::default()
        }))
        .err()
        .context("bad reference accepted")?;
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    Ok(())
}

#[test]
fn pull_with_auth_config() -> Result<()> {
    berth_fixtures::require_root();
    let img_dir = tempfile::tempdir()?;
    let img = berth_fixtures::images::base(img_dir.path())?;
    let registry = berth_fixtures::Registry::start_tls_auth("kube", "s3cret")?;
    let reference = registry.push(&img, "private/base:v1")?;

    let mut env = Env::new("bcrimg1", "10.252.1.0/24")?;
    let ca = registry
        .ca_pem()
        .context("TLS registry has a CA")?
        .to_path_buf();
    env.registry.host_mut(&registry.host()).ca_certs.push(ca);
    let server = Server::start(&env)?;
    let mut images = server.images()?;

    let anonymous = server.block_on(images.pull_image(cri::PullImageRequest {
        image: spec(&reference),
        ..Default::default()
    }));
    assert!(
        anonymous.is_err(),
        "pulled from an auth registry without credentials"
    );

    let wrong = cri::AuthConfig {
        username: "kube".into(),
        password: "nope".into(),
        ..Default::default()
    };
    let bad = server.block_on(images.pull_image(cri::PullImageRequest {
        image: spec(&reference),
        auth: Some(wrong),
        ..Default::default()
    }));
    assert!(bad.is_err(), "pulled with a wrong password");

    // kubelet sends docker-config style `auth` (base64 user:password).
    let auth = cri::AuthConfig {
        auth: "a3ViZTpzM2NyZXQ=".into(),
        ..Default::default()
    };
    let ok = server
        .block_on(images.pull_image(cri::PullImageRequest {
            image: spec(&reference),
            auth: Some(auth),
            ..Default::default()
        }))?
        .into_inner();
    assert_eq!(ok.image_ref, img.config_digest);
    Ok(())
}
