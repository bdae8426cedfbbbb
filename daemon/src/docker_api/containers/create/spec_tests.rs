use serde_json::json;

use std::path::Path;

use berth_engine::container_spec::{build, ImageDefaults, SpecError, SpecInputs};

use super::CreateRequest;

pub(super) fn rootfs() -> tempfile::TempDir {
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

pub(super) const HELD: [&str; 15] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
    "CAP_SYS_ADMIN",
];

/// An image config's `config` (`{"Env": …, "Cmd": …}`) as the engine reads it.
pub(super) fn image_defaults(v: &serde_json::Value) -> ImageDefaults {
    let strings = |key: &str| serde_json::from_value(v[key].clone()).ok();
    let string = |key: &str| v[key].as_str().unwrap_or_default().to_string();
    ImageDefaults {
        user: string("User"),
        env: strings("Env"),
        entrypoint: strings("Entrypoint"),
        cmd: strings("Cmd"),
        working_dir: string("WorkingDir"),
        stop_signal: v["StopSignal"].as_str().map(str::to_string),
        exposed_ports: serde_json::from_value(v["ExposedPorts"].clone()).ok(),
    }
}

fn build_from(
    body: serde_json::Value,
    image: serde_json::Value,
    rootfs: &Path,
) -> Result<serde_json::Value, SpecError> {
    let request: CreateRequest =
        serde_json::from_value(body).map_err(|e| SpecError::User(e.to_string()))?;
    let config = request.to_config()?;
    let image = image_defaults(&image);
    let spec = build(&SpecInputs {
        id: "0123456789abcdef0123",
        config: &config,
        image: &image,
        rootfs,
        cgroups_path: "/berth/0123456789abcdef0123".into(),
        held_caps: &HELD,
        init_binary: Path::new("/var/lib/berth/berth-init"),
    })?;
    // The tests read the spec as it is written into config.json.
    serde_json::to_value(spec).map_err(|e| SpecError::User(e.to_string()))
}

#[test]
fn a_docker_run_body_becomes_a_valid_oci_spec() -> Result<(), Box<dyn std::error::Error>> {
    let root = rootfs();
    let bind_src = tempfile::tempdir()?;
    let body = json!({
        "User": "www-data", "Tty": true, "Env": ["A=1"], "Cmd": ["echo", "hi"],
        "Image": "busybox", "WorkingDir": "",
        "HostConfig": {
            "Binds": [format!("{}:/data:ro", bind_src.path().display())],
            "Tmpfs": {"/run": "size=1m,exec"},
            "Memory": 67108864, "NanoCpus": 1500000000, "PidsLimit": 10, "CpuShares": 512,
            "CapAdd": ["SYS_ADMIN"], "CapDrop": ["NET_RAW"], "ReadonlyRootfs": true,
            "NetworkMode": "none",
        }
    });
    let image = json!({"Env": ["PATH=/bin", "A=0", "B=2"], "Entrypoint": ["/bin/entry"], "Cmd": ["ignored"], "WorkingDir": "/srv"});
    let spec = build_from(body, image, root.path())?;
    // The oci-spec crate's types accept it: it is a well-formed runtime spec.
    let typed: oci_spec::runtime::Spec = serde_json::from_value(spec.clone())?;
    assert_eq!(typed.hostname().as_deref(), Some("0123456789ab"));
    let process = &spec["process"];
    assert_eq!(process["args"], json!(["/bin/entry", "echo", "hi"]));
    assert_eq!(process["cwd"], "/srv");
    assert_eq!(
        process["user"],
        json!({"uid": 33, "gid": 33, "additionalGids": [100]})
    );
    assert_eq!(
        process["env"],
        json!([
            "PATH=/bin",
            "HOSTNAME=0123456789ab",
            "TERM=xterm",
            "A=1",
            "B=2",
            "HOME=/var/www"
        ])
    );
    let caps = process["capabilities"]["effective"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(caps.contains(&json!("CAP_SYS_ADMIN")) && !caps.contains(&json!("CAP_NET_RAW")));
    assert_eq!(spec["root"]["readonly"], true);
    let res = &spec["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 67108864);
    assert_eq!(
        res["cpu"],
        json!({"period": 100000, "quota": 150000, "shares": 512})
    );
    assert_eq!(res["pids"]["limit"], 10);
    let mounts = spec["mounts"].as_array().cloned().unwrap_or_default();
    let find = |dest: &str| mounts.iter().find(|m| m["destination"] == dest).cloned();
    assert_eq!(
        find("/data").map(|m| m["options"].clone()),
        Some(json!(["rbind", "ro", "rprivate"]))
    );
    assert_eq!(
        find("/run").map(|m| m["options"].clone()),
        Some(json!(["nosuid", "nodev", "size=1m"]))
    );
    assert!(find("/proc").is_some() && find("/dev/shm").is_some());
    let namespaces = spec["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(namespaces.contains(&json!({"type": "network"})));
    assert!(spec["linux"]["maskedPaths"]
        .as_array()
        .is_some_and(|m| m.contains(&json!("/proc/kcore"))));
    Ok(())
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let root = rootfs();
    let cases = [
        (json!({"Image": "x"}), json!({}), "No command specified"),
        (
            json!({"Cmd": ["x"], "User": "ghost"}),
            json!({}),
            "unable to find user ghost",
        ),
        (
            json!({"Cmd": ["x"], "WorkingDir": "srv"}),
            json!({}),
            "needs to be an absolute path",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"Binds": ["vol:/data:rshared"]}}),
            json!({}),
            "a propagation mode is not applied to volumes",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"Mounts": [
                {"Type": "bind", "Source": "/nonexistent/src", "Target": "/data"}]}}),
            json!({}),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/src",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"Binds": ["/tmp:/data"], "Tmpfs": {"/data": ""}}}),
            json!({}),
            "Duplicate mount point: /data",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"Memory": 1024}}),
            json!({}),
            "Minimum memory limit",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"CapAdd": ["SYS_RESOURCE"]}}),
            json!({}),
            "bounding set",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"NetworkMode": "container:"}}),
            json!({}),
            "invalid network mode \"container:\"",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"NetworkMode": "none",
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}}),
            json!({}),
            "publishing ports (80/tcp) needs a bridge network",
        ),
        (
            json!({"Cmd": ["x"], "HostConfig": {"NetworkMode": "none", "PublishAllPorts": true}}),
            json!({}),
            "publishing ports (-P)",
        ),
    ];
    for (body, image, expected) in cases {
        let err = build_from(body.clone(), image, root.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(expected), "{body}: {err:?} lacks {expected:?}");
    }
}

fn refused(spec: &serde_json::Value) -> Vec<String> {
    spec["linux"]["seccomp"]["syscalls"][0]["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn default_seccomp_profile_follows_capabilities_and_security_opts(
) -> Result<(), Box<dyn std::error::Error>> {
    let root = rootfs();
    let spec = build_from(json!({"Cmd": ["x"]}), json!({}), root.path())?;
    let seccomp = &spec["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
    let names = refused(&spec);
    for call in ["mount", "unshare", "setns", "keyctl", "reboot", "ptrace"] {
        assert!(
            names.iter().any(|n| n == call),
            "{call} not refused: {names:?}"
        );
    }
    let rules = seccomp["syscalls"].as_array().cloned().unwrap_or_default();
    assert!(rules
        .iter()
        .any(|r| r["names"] == json!(["clone"])
            && r["args"].as_array().is_some_and(|a| a.len() == 7)));
    assert!(rules
        .iter()
        .any(|r| r["names"] == json!(["clone3"]) && r["errnoRet"] == 38));
    assert_eq!(spec["process"]["noNewPrivileges"], false);

    // A capability makes its calls legitimate again; the keyring stays refused.
    let spec = build_from(
        json!({"Cmd": ["x"], "HostConfig": {"CapAdd": ["SYS_ADMIN"]}}),
        json!({}),
        root.path(),
    )?;
    let names = refused(&spec);
    assert!(
        !names.iter().any(|n| n == "mount" || n == "unshare"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "keyctl"));
    assert!(!spec["linux"]["seccomp"]["syscalls"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["names"] == json!(["clone"]))));

    // Privileged and seccomp=unconfined run without a filter.
    for host_config in [
        json!({"Privileged": true}),
        json!({"SecurityOpt": ["seccomp=unconfined"]}),
        json!({"SecurityOpt": ["seccomp:unconfined"]}),
    ] {
        let spec = build_from(
            json!({"Cmd": ["x"], "HostConfig": host_config}),
            json!({}),
            root.path(),
        )?;
        assert!(spec["linux"].get("seccomp").is_none(), "{host_config}");
    }
    let spec = build_from(
        json!({"Cmd": ["x"], "HostConfig": {"SecurityOpt": ["no-new-privileges"]}}),
        json!({}),
        root.path(),
    )?;
    assert_eq!(spec["process"]["noNewPrivileges"], true);

    for (opt, expected) in [
        ("seccomp=/etc/profile.json", "send the contents"),
        ("selinux=whatever", "berth knows"),
    ] {
        let err = build_from(
            json!({"Cmd": ["x"], "HostConfig": {"SecurityOpt": [opt]}}),
            json!({}),
            root.path(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains(opt) && err.contains(expected), "{opt}: {err}");
    }
    Ok(())
}

#[test]
fn a_seccomp_profile_sent_as_security_opt_becomes_the_filter(
) -> Result<(), Box<dyn std::error::Error>> {
    let root = rootfs();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO",
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
        ]
    });
    let opt = format!("seccomp={profile}");
    let spec = build_from(
        json!({"Cmd": ["x"], "HostConfig": {"SecurityOpt": [opt]}}),
        json!({}),
        root.path(),
    )?;
    assert_eq!(
        spec["linux"]["seccomp"],
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 122},
                            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]})
    );
    // With CAP_SYS_ADMIN the excluded rule goes.
    let spec = build_from(
        json!({"Cmd": ["x"], "HostConfig": {"SecurityOpt": [opt], "CapAdd": ["SYS_ADMIN"]}}),
        json!({}),
        root.path(),
    )?;
    assert_eq!(
        spec["linux"]["seccomp"]["syscalls"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Privileged still runs unfiltered, as with Docker.
    let spec = build_from(
        json!({"Cmd": ["x"], "HostConfig": {"SecurityOpt": [opt], "Privileged": true}}),
        json!({}),
        root.path(),
    )?;
    assert!(spec["linux"].get("seccomp").is_none());
    let err = build_from(
        json!({"Cmd": ["x"], "HostConfig": {"SecurityOpt": ["seccomp={\"defaultAction\": \"SCMP_ACT_NOPE\"}"]}}),
        json!({}),
        root.path(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("unknown action \"SCMP_ACT_NOPE\""), "{err}");
    Ok(())
}

#[test]
fn the_hostname_is_the_id_or_on_the_hosts_network_the_hosts(
) -> Result<(), Box<dyn std::error::Error>> {
    let root = rootfs();
    let hostname = |body: serde_json::Value| -> Result<String, Box<dyn std::error::Error>> {
        let spec = build_from(body, json!({}), root.path())?;
        let env = spec["process"]["env"].clone();
        let name = spec["hostname"].as_str().unwrap_or_default().to_string();
        assert!(
            env.as_array()
                .is_some_and(|e| e.iter().any(|v| v == &json!(format!("HOSTNAME={name}")))),
            "HOSTNAME follows the hostname: {env}"
        );
        Ok(name)
    };
    let host = nix::unistd::gethostname()?.to_string_lossy().into_owned();
    assert_eq!(hostname(json!({"Cmd": ["x"]}))?, "0123456789ab");
    assert_eq!(
        hostname(json!({"Cmd": ["x"], "HostConfig": {"NetworkMode": "host"}}))?,
        host
    );
    assert_eq!(
        hostname(json!({"Cmd": ["x"], "Hostname": "web", "HostConfig": {"NetworkMode": "host"}}))?,
        "web"
    );
    Ok(())
}

/// `HostConfig.BlkioWeight` becomes `linux.resources.blockIO.weight`; Docker's range
/// (10..1000, 0 unset) is enforced with Docker's error.
#[test]
fn blkio_weight_is_in_the_spec_and_its_range_checked() -> Result<(), Box<dyn std::error::Error>> {
    let root = rootfs();
    let body = |w: i64| json!({"Cmd": ["x"], "HostConfig": {"BlkioWeight": w}});
    let spec = build_from(body(300), json!({}), root.path())?;
    assert_eq!(
        spec["linux"]["resources"]["blockIO"],
        json!({"weight": 300})
    );
    let typed: oci_spec::runtime::Spec = serde_json::from_value(spec)?;
    let weight = typed
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .and_then(|r| r.block_io().clone())
        .and_then(|b| b.weight());
    assert_eq!(weight, Some(300));
    let unset = build_from(body(0), json!({}), root.path())?;
    assert!(unset["linux"]["resources"].get("blockIO").is_none());
    for w in [5, 1001] {
        let err = build_from(body(w), json!({}), root.path())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("Range of blkio weight is from 10 to 1000"),
            "{w}"
        );
    }
    // Not a u16 at all: refused when the request is read.
    assert!(build_from(body(-1), json!({}), root.path()).is_err());
    Ok(())
}
