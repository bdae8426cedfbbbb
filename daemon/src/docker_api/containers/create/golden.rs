//! The `config.json` that the engine's spec builder writes for the translation of a
//! varied set of Docker create bodies ([`CreateRequest::to_config`]), recorded in the
//! engine's `container_spec/testdata/golden_specs.json`: a change to the translation or
//! to how the spec is built must leave it as it was.
//! `BERTH_UPDATE_GOLDEN=1 cargo test -p berth-daemon --lib golden` rewrites the file
//! after an intended change.
//!
//! What differs between hosts is normalised away: the temporary root filesystem's
//! path, the host's name (host network) and the cgroup namespace (cgroup v2 hosts only).

use std::collections::BTreeMap;

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use std::path::Path;

use berth_engine::config::ContainerConfig;
use berth_engine::container_spec::{build, ImageDefaults, SpecInputs};

use super::spec_tests::{image_defaults, rootfs, HELD};
use super::CreateRequest;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../engine/src/container_spec/testdata/golden_specs.json"
);

/// (name, create body, image config).
fn cases() -> Vec<(&'static str, Value, Value)> {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
            {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS",
             "excludes": {"caps": ["CAP_SYS_PTRACE"]}},
            {"names": ["mount"], "action": "SCMP_ACT_LOG", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
        ]
    });
    let cmd = json!(["sh"]);
    let none = json!({});
    vec![
        ("minimal", json!({"Cmd": cmd}), none.clone()),
        (
            "image_defaults",
            json!({"Env": ["A=1"], "Cmd": ["echo", "hi"]}),
            json!({"Env": ["PATH=/bin", "A=0", "B=2"], "Entrypoint": ["/bin/entry"],
                   "Cmd": ["ignored"], "WorkingDir": "/srv", "User": "www-data"}),
        ),
        (
            "docker_run_body",
            json!({
                "User": "www-data", "Tty": true, "Env": ["A=1"], "Cmd": ["echo", "hi"],
                "Image": "busybox", "WorkingDir": "",
                "HostConfig": {
                    "Binds": ["/nonexistent/src:/data:ro"],
                    "Tmpfs": {"/run": "size=1m,exec"},
                    "Memory": 67108864, "NanoCpus": 1500000000, "PidsLimit": 10, "CpuShares": 512,
                    "CapAdd": ["SYS_ADMIN"], "CapDrop": ["NET_RAW"], "ReadonlyRootfs": true,
                    "NetworkMode": "none",
                }
            }),
            json!({"Env": ["PATH=/bin"], "Entrypoint": ["/bin/entry"], "WorkingDir": "/srv"}),
        ),
        (
            "binds",
            json!({"Cmd": cmd, "HostConfig": {"Binds": [
                "/nonexistent/a:/a", "/nonexistent/b:/b:ro,rslave", "/h:/c/../d:rw,shared,z"]}}),
            none.clone(),
        ),
        (
            "tmpfs_over_default_shm",
            json!({"Cmd": cmd, "HostConfig": {"Tmpfs": {
                "/run": "", "/dev/shm": "size=1g", "/scratch": "exec,suid,dev,mode=700"}}}),
            none.clone(),
        ),
        (
            "mounts",
            json!({"Cmd": cmd, "HostConfig": {"Mounts": [
                {"Type": "bind", "Source": "/tmp", "Target": "/host-tmp", "ReadOnly": true,
                 "BindOptions": {"Propagation": "rslave", "NonRecursive": true}},
                {"Type": "bind", "Source": "/tmp", "Target": "/again"},
                {"Type": "tmpfs", "Target": "/cache",
                 "TmpfsOptions": {"SizeBytes": 2097152, "Mode": 448}},
                {"Type": "tmpfs", "Target": "/ro-cache", "ReadOnly": true}
            ]}}),
            none.clone(),
        ),
        (
            "caps_add_drop",
            json!({"Cmd": cmd, "HostConfig": {
                "CapAdd": ["SYS_ADMIN", "CAP_SYS_ADMIN"], "CapDrop": ["NET_RAW", "CAP_MKNOD"]}}),
            none.clone(),
        ),
        (
            "caps_drop_all",
            json!({"Cmd": cmd, "HostConfig": {"CapAdd": ["KILL"], "CapDrop": ["ALL"]}}),
            none.clone(),
        ),
        (
            "privileged",
            json!({"Cmd": cmd, "HostConfig": {"Privileged": true, "ShmSize": 1048576}}),
            none.clone(),
        ),
        (
            "seccomp_unconfined_no_new_privileges",
            json!({"Cmd": cmd, "HostConfig": {"SecurityOpt": [
                "seccomp=unconfined", "no-new-privileges", "apparmor=unconfined"]}}),
            none.clone(),
        ),
        (
            "seccomp_profile",
            json!({"Cmd": cmd, "HostConfig": {"SecurityOpt": [format!("seccomp={profile}")]}}),
            none.clone(),
        ),
        (
            "seccomp_profile_with_caps",
            json!({"Cmd": cmd, "HostConfig": {"SecurityOpt": [format!("seccomp={profile}")],
                   "CapAdd": ["SYS_ADMIN"]}}),
            none.clone(),
        ),
        (
            "sysctls",
            json!({"Cmd": cmd, "HostConfig": {"Sysctls": {
                "net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}}}),
            none.clone(),
        ),
        (
            "resources",
            json!({"Cmd": cmd, "HostConfig": {
                "Memory": 134217728, "MemoryReservation": 67108864, "MemorySwap": -1,
                "CpuPeriod": 50000, "CpuQuota": 25000, "CpuShares": 256,
                "CpusetCpus": "0", "CpusetMems": "0", "PidsLimit": 64, "BlkioWeight": 300}}),
            none.clone(),
        ),
        (
            "resources_nano_cpus_swap",
            json!({"Cmd": cmd, "HostConfig": {"NanoCpus": 500000000, "MemorySwap": 268435456,
                   "Memory": 134217728, "PidsLimit": -1}}),
            none.clone(),
        ),
        (
            "readonly_rootfs_oom_user_workdir_tty",
            json!({"Cmd": cmd, "Tty": true, "User": "33:100", "WorkingDir": "/work",
                   "Domainname": "example.org", "Hostname": "web",
                   "HostConfig": {"ReadonlyRootfs": true, "OomScoreAdj": 500}}),
            none.clone(),
        ),
        (
            "user_by_name_with_groups",
            json!({"Cmd": cmd, "User": "www-data", "HostConfig": {"OomScoreAdj": -999}}),
            none.clone(),
        ),
        (
            "devices_ulimits_groups_init_oom",
            json!({"Cmd": cmd, "HostConfig": {
                "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull",
                             "CgroupPermissions": "rw"}],
                "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                "GroupAdd": ["1234", "users"], "Init": true, "OomKillDisable": true,
                "Memory": 67108864}}),
            none.clone(),
        ),
        (
            "host_network",
            json!({"Cmd": cmd, "HostConfig": {"NetworkMode": "host",
                   "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}}),
            none.clone(),
        ),
        (
            "bridge_network",
            json!({"Cmd": cmd, "HostConfig": {"NetworkMode": "bridge"}}),
            none,
        ),
    ]
}

/// A case with the host-only parts of the config (hugepages, unified keys: CRI's,
/// not in a Docker body).
fn cri_limits_case() -> ContainerConfig {
    let mut config = translated("cri_hugepages_unified", json!({"Cmd": ["x"]}));
    config.resources.hugepage_limits = vec![("2MB".into(), 4 << 20), ("1GB".into(), 0)];
    config.resources.unified = [
        ("memory.high".to_string(), "50M".to_string()),
        ("pids.max".to_string(), "10".to_string()),
    ]
    .into();
    config
}

/// The container config for a Docker create body.
fn translated(name: &str, body: Value) -> ContainerConfig {
    let request: CreateRequest = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(e) => panic!("{name}: {e}"),
    };
    match request.to_config() {
        Ok(c) => c,
        Err(e) => panic!("{name}: {e}"),
    }
}

/// The JSON `build` writes for `config`, with what differs between hosts replaced.
fn built(config: &ContainerConfig, image: &ImageDefaults, root: &Path) -> Value {
    let spec = build(&SpecInputs {
        id: "0123456789abcdef0123",
        config,
        image,
        rootfs: root,
        cgroups_path: "/berth/0123456789abcdef0123".into(),
        held_caps: &HELD,
        init_binary: Path::new("/var/lib/berth/berth-init"),
    });
    let spec = match spec {
        Ok(spec) => spec,
        Err(e) => panic!("building the spec: {e}"),
    };
    let mut value = match serde_json::to_value(&spec) {
        Ok(v) => v,
        Err(e) => panic!("encoding the spec: {e}"),
    };
    normalise(&mut value, root);
    value
}

fn normalise(value: &mut Value, root: &Path) {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = root.display().to_string();
    fn walk(v: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
        match v {
            Value::String(s) => {
                if let Some(new) = f(s) {
                    *s = new;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, f)),
            Value::Object(o) => o.values_mut().for_each(|v| walk(v, f)),
            _ => {}
        }
    }
    walk(value, &|s| {
        if s == root {
            Some("<rootfs>".into())
        } else if !host.is_empty() && s == host {
            Some("<host>".into())
        } else if !host.is_empty() && s == format!("HOSTNAME={host}") {
            Some("HOSTNAME=<host>".into())
        } else {
            None
        }
    });
    if let Some(ns) = value
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    {
        ns.retain(|n| n["type"] != "cgroup");
    }
}

fn all_built() -> BTreeMap<String, Value> {
    let root = rootfs();
    let mut out = BTreeMap::new();
    for (name, body, image) in cases() {
        let config = translated(name, body);
        let image = image_defaults(&image);
        out.insert(name.to_string(), built(&config, &image, root.path()));
    }
    out.insert(
        "cri_hugepages_unified".into(),
        built(&cri_limits_case(), &ImageDefaults::default(), root.path()),
    );
    out
}

#[test]
fn built_specs_match_the_recorded_ones() -> Result<(), Box<dyn std::error::Error>> {
    let now = all_built();
    if std::env::var_os("BERTH_UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, serde_json::to_string_pretty(&now)? + "\n")?;
        return Ok(());
    }
    let recorded: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(GOLDEN)?)?;
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        now.keys().collect::<Vec<_>>()
    );
    for (name, want) in &recorded {
        // The runtime reads config.json into oci-spec's types: it sees the same spec.
        let runtime_view = |v: &Value| serde_json::from_value::<Spec>(v.clone()).ok();
        assert!(
            runtime_view(want).is_some(),
            "{name}: recorded spec unreadable"
        );
        assert_eq!(runtime_view(&now[name]), runtime_view(want), "{name}");
        // And the JSON is the same but for what the typed form writes differently.
        assert_eq!(
            accepted(now[name].clone()),
            accepted(want.clone()),
            "{name}"
        );
    }
    Ok(())
}

/// The JSON with the differences the typed spec makes, and runtimes do not see,
/// taken out:
/// - capability sets are `HashSet`s in oci-spec, written in no particular order (runc
///   and berth's runtime read them as sets);
/// - a device rule's `"minor": null` (any minor) is left out (both read a missing and a
///   null minor as "any", `-1`).
fn accepted(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.retain(|_, v| !v.is_null());
                o.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    if let Some(caps) = v
        .pointer_mut("/process/capabilities")
        .and_then(Value::as_object_mut)
    {
        for set in caps.values_mut() {
            if let Some(a) = set.as_array_mut() {
                a.sort_by_key(|c| c.as_str().map(str::to_string));
            }
        }
    }
    v
}
