use serde_json::json;

use super::*;
use crate::config::ContainerConfig;

fn rootfs() -> tempfile::TempDir {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("tempdir: {err}"),
    };
    let etc = dir.path().join("etc");
    let result = std::fs::create_dir_all(&etc)
        .and_then(|()| {
            std::fs::write(
                etc.join("passwd"),
                "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\n",
            )
        })
        .and_then(|()| std::fs::write(etc.join("group"), "root:x:0:\nusers:x:100:www-data\n"));
    if let Err(err) = result {
        panic!("writing the rootfs: {err}");
    }
    dir
}

/// What berthd holds on a usual host: Docker's defaults and CAP_SYS_ADMIN.
fn held() -> Vec<&'static str> {
    let mut caps = super::defaults::DEFAULT_CAPS.to_vec();
    caps.push("CAP_SYS_ADMIN");
    caps
}

/// Hugepage limits and unified keys (CRI's) reach the spec's `linux.resources`
/// (whether the host can apply them is checked before, in `host_limits`).
#[test]
fn hugepage_limits_and_unified_keys_are_in_the_spec() -> Result<(), Box<dyn std::error::Error>> {
    let root = rootfs();
    let mut config = ContainerConfig {
        process: crate::config::ProcessConfig {
            cmd: Some(vec!["x".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    config.resources.hugepage_limits = vec![("2MB".into(), 4 << 20), ("1GB".into(), 0)];
    config.resources.unified = [("memory.high".to_string(), "50M".to_string())].into();
    let spec = build(&SpecInputs {
        id: "0123456789abcdef0123",
        config: &config,
        image: &ImageDefaults::default(),
        rootfs: root.path(),
        cgroups_path: "/berth/0123456789abcdef0123".into(),
        held_caps: &held(),
        init_binary: Path::new("/var/lib/berth/berth-init"),
    })?;
    let spec = serde_json::to_value(spec)?;
    let res = &spec["linux"]["resources"];
    assert_eq!(
        res["hugepageLimits"],
        json!([{"pageSize": "2MB", "limit": 4 << 20}, {"pageSize": "1GB", "limit": 0}])
    );
    assert_eq!(res["unified"], json!({"memory.high": "50M"}));
    let typed: oci_spec::runtime::Spec = serde_json::from_value(spec.clone())?;
    let limits = typed
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .and_then(|r| r.hugepage_limits().clone())
        .unwrap_or_default();
    assert_eq!(limits.len(), 2);
    Ok(())
}
