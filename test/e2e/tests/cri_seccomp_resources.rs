//! Through a real berthd's CRI: seccomp Localhost profiles (effective inside the
//! container; missing or invalid ones refused by name with nothing made), hugepage
//! limits and unified keys this hybrid-cgroup host cannot apply refused at create and
//! update time with nothing made or changed, and the pod's resources carried to its
//! containers as containerd's sandbox annotations and reported by PodSandboxStatus.
//! Then the Docker API path: `--security-opt seccomp=FILE` through the docker CLI and
//! through berth's.

mod cri_common;

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};
use cri_common::{cgroup_dirs, cgroup_file, container, setup_base};
use k8s_cri::v1 as cri;

/// mkdir answers EDQUOT ("Disk quota exceeded"), an errno nothing else would give here.
const MKDIR_EDQUOT: &str = r#"{
    "defaultAction": "SCMP_ACT_ALLOW",
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
    ],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}
    ]
}"#;

fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn localhost(profile: &Path) -> Option<cri::SecurityProfile> {
    Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Localhost as i32,
        localhost_ref: profile.display().to_string(),
    })
}

#[test]
fn cri_seccomp_localhost_hugepages_unified_and_pod_resources() -> Result<()> {
    require_root();
    // The pod's cgroup parent is kubelet's to remove; the test made it, the test
    // removes it, also when it fails: declared first, it drops last (after berthd and
    // the pod's containers are gone).
    let cgroup_parent = "crie2e-seccomp-pod";
    let _cgroups = berth_fixtures::cgroups::CgroupGuard::new(cgroup_parent);
    let s = setup_base("crie2e/busybox", "")?;
    let (berthd, client, image) = (&s.berthd, &s.client, s.base());
    let work = s.work.as_path();
    let mut rt = client.runtime()?;

    let pod = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "criseccomp".into(),
            namespace: "default".into(),
            uid: "uid-criseccomp".into(),
            attempt: 0,
        }),
        log_directory: work.join("logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            // What kubelet sends: the pod's summed limits and its RuntimeClass overhead.
            resources: Some(cri::LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 150_000,
                cpu_shares: 1536,
                memory_limit_in_bytes: 384 << 20,
                ..Default::default()
            }),
            overhead: Some(cri::LinuxContainerResources {
                cpu_shares: 25,
                memory_limit_in_bytes: 40 << 20,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (sandbox, _pod_guard) = s.start_pod(&pod)?;

    // --- seccomp Localhost: the profile is in force inside the container.
    let profile = work.join("mkdir-edquot.json");
    std::fs::write(&profile, MKDIR_EDQUOT)?;
    let mut confined = container("confined", &image, "sleep 1000", "confined/0.log");
    confined.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            seccomp: localhost(&profile),
            ..Default::default()
        }),
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
    });
    let id = client.create_and_start(&sandbox, &pod, confined.clone())?;
    client.wait_state(&id, cri::ContainerState::ContainerRunning)?;
    let sh = |id: &str, script: &str| -> Result<(i32, String)> {
        let r = client.exec(id, &["sh", "-c", script], 10)?;
        Ok((
            r.exit_code,
            format!(
                "{}{}",
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            )
            .trim()
            .to_string(),
        ))
    };
    let (code, out) = sh(&id, "mkdir /tmp/d")?;
    assert_ne!(code, 0, "mkdir succeeded under the profile: {out}");
    assert!(out.contains("quota"), "mkdir failed otherwise: {out}");
    // Only mkdir: the rest of the filesystem works, and a filter is loaded.
    assert_eq!(sh(&id, "touch /tmp/f && echo ok")?, (0, "ok".to_string()));
    assert_eq!(
        sh(&id, "grep ^Seccomp: /proc/self/status")?,
        (0, "Seccomp:\t2".to_string())
    );

    // The deprecated seccomp_profile_path "localhost/<path>" works the same way.
    let mut legacy = container("legacy", &image, "sleep 1000", "legacy/0.log");
    #[allow(deprecated)]
    let sc = cri::LinuxContainerSecurityContext {
        seccomp_profile_path: format!("localhost/{}", profile.display()),
        ..Default::default()
    };
    legacy.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(sc),
        resources: None,
    });
    let legacy_id = client.create_and_start(&sandbox, &pod, legacy)?;
    client.wait_state(&legacy_id, cri::ContainerState::ContainerRunning)?;
    let (code, out) = sh(&legacy_id, "mkdir /tmp/d")?;
    assert!(code != 0 && out.contains("quota"), "{code}: {out}");

    // --- Refusals leave nothing: no record, bundle, snapshot or cgroup.
    let containers_dir = berthd.root().join("containers");
    let snapshots_dir = berthd.root().join("snapshots");
    let bundles_before = entries(&containers_dir);
    let snapshots_before = entries(&snapshots_dir);
    let cgroups_before: Vec<_> = cgroup_dirs(cgroup_parent)
        .iter()
        .map(|d| (d.clone(), entries(d)))
        .collect();
    let listed_before = client.list(cri::ContainerFilter::default())?.len();

    let bad_json = work.join("bad.json");
    std::fs::write(&bad_json, "{\"defaultAction\": ")?;
    let typo = work.join("typo.json");
    std::fs::write(
        &typo,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )?;
    let missing = work.join("missing.json");
    let create = |name: &str, linux: cri::LinuxContainerConfig| {
        let mut c = container(name, &image, "sleep 1000", &format!("{name}/0.log"));
        c.linux = Some(linux);
        let mut rt = client.runtime()?;
        let r = client.block_on(rt.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(c),
            sandbox_config: Some(pod.clone()),
        }));
        anyhow::Ok(r.err().map(|s| (s.code(), s.message().to_string())))
    };
    let with_profile = |p: &Path| cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            seccomp: localhost(p),
            ..Default::default()
        }),
        resources: None,
    };
    let with_resources = |r: cri::LinuxContainerResources| cri::LinuxContainerConfig {
        security_context: None,
        resources: Some(r),
    };
    let hugepages = cri::LinuxContainerResources {
        hugepage_limits: vec![cri::HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 20,
        }],
        ..Default::default()
    };
    let unified = cri::LinuxContainerResources {
        unified: [("memory.high".to_string(), "32M".to_string())].into(),
        ..Default::default()
    };
    let host = berth_v1_hugetlb();
    if host.hugetlb_applies {
        eprintln!(
            "skipped: hugepage limits refused (this host's hugetlb controller is where berth puts containers, so berth applies them)"
        );
    }
    if host.v2 {
        eprintln!("skipped: unified keys refused (this host is cgroup v2, so berth applies them)");
    }
    let cases: Vec<(&str, cri::LinuxContainerConfig, Vec<String>)> = vec![
        (
            "missing-profile",
            with_profile(&missing),
            vec![missing.display().to_string(), "No such file".into()],
        ),
        (
            "bad-json",
            with_profile(&bad_json),
            vec![
                bad_json.display().to_string(),
                "not a seccomp profile".into(),
            ],
        ),
        (
            "typo",
            with_profile(&typo),
            vec![
                typo.display().to_string(),
                "unknown syscall \"mkdri\"".into(),
            ],
        ),
        (
            "relative",
            with_profile(Path::new("profiles/x.json")),
            vec!["absolute path".into()],
        ),
    ];
    let mut cases = cases;
    if !host.v2 {
        cases.push((
            "unified",
            with_resources(unified.clone()),
            vec!["memory.high".into(), "cgroup v2".into()],
        ));
    }
    if !host.hugetlb_applies {
        cases.push((
            "hugepages",
            with_resources(hugepages.clone()),
            vec!["hugetlb".into(), "2MB".into()],
        ));
    }
    for (name, linux, expected) in cases {
        let err = create(name, linux)?;
        let Some((code, message)) = err else {
            anyhow::bail!("{name}: CreateContainer succeeded");
        };
        for e in &expected {
            assert!(
                message.contains(e),
                "{name}: {code:?} {message:?} lacks {e:?}"
            );
        }
        assert!(
            matches!(
                code,
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
            ),
            "{name}: {code:?}"
        );
    }
    assert_eq!(
        client.list(cri::ContainerFilter::default())?.len(),
        listed_before
    );
    assert_eq!(entries(&containers_dir), bundles_before);
    assert_eq!(entries(&snapshots_dir), snapshots_before);
    for (dir, before) in &cgroups_before {
        assert_eq!(&entries(dir), before, "{}", dir.display());
    }

    // UpdateContainerResources with limits this host cannot apply changes nothing.
    let rel = format!("{cgroup_parent}/{id}");
    let config_json = containers_dir.join(&id).join("config.json");
    let spec_before = std::fs::read_to_string(&config_json)?;
    let mut updates = Vec::new();
    if !host.v2 {
        updates.push(("unified", unified));
    }
    if !host.hugetlb_applies {
        updates.push(("hugepages", hugepages));
    }
    for (what, mut res) in updates {
        res.memory_limit_in_bytes = 96 << 20;
        let r = client.block_on(rt.update_container_resources(
            cri::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(res),
                ..Default::default()
            },
        ));
        let err = r.err().map(|s| s.message().to_string());
        assert!(err.is_some(), "{what}: the update succeeded");
        assert_eq!(
            cgroup_file("memory", &rel, "memory.limit_in_bytes", "memory.max")?,
            (64u64 << 20).to_string(),
            "{what}: {err:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&config_json)?,
            spec_before,
            "{what}"
        );
    }

    // --- The pod's resources: containerd's sandbox annotations on its containers...
    let spec: serde_json::Value = serde_json::from_str(&spec_before)?;
    let ann = &spec["annotations"];
    for (k, v) in [
        ("io.kubernetes.cri.sandbox-cpu-period", "100000"),
        ("io.kubernetes.cri.sandbox-cpu-quota", "150000"),
        ("io.kubernetes.cri.sandbox-cpu-shares", "1536"),
        (
            "io.kubernetes.cri.sandbox-memory",
            &(384u64 << 20).to_string(),
        ),
    ] {
        assert_eq!(ann[k].as_str(), Some(v), "{k} in {ann}");
    }
    // ... and its overhead and resources in PodSandboxStatus's verbose info.
    let status = client
        .block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: true,
        }))?
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(
        status
            .info
            .get("info")
            .context("no verbose info in PodSandboxStatus")?,
    )?;
    let linux = &info["config"]["linux"];
    assert_eq!(
        linux["overhead"]["memory_limit_in_bytes"],
        serde_json::json!(40u64 << 20),
        "{info}"
    );
    assert_eq!(linux["resources"]["cpu_quota"], serde_json::json!(150_000));
    Ok(())
}

struct HostHugetlb {
    /// Where berth puts containers, hugetlb is usable (a v1 hierarchy, or the v2
    /// root's controllers): hugepage limits would be applied, not refused.
    hugetlb_applies: bool,
    /// /sys/fs/cgroup is cgroup v2: unified keys would be applied, not refused.
    v2: bool,
}

fn berth_v1_hugetlb() -> HostHugetlb {
    let proc = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers");
    let v2 = controllers.is_ok();
    HostHugetlb {
        hugetlb_applies: if v2 {
            controllers.is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"))
        } else {
            proc.lines().any(|l| {
                l.starts_with("hugetlb\t") && l.split('\t').nth(1).is_some_and(|id| id != "0")
            })
        },
        v2,
    }
}

/// The Docker API path: the docker CLI (and berth's) read `--security-opt seccomp=FILE`
/// and send the contents; the profile is in force inside the container.
#[test]
fn docker_security_opt_seccomp_file() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let work = tempfile::tempdir()?;
    let profile = work.path().join("mkdir-edquot.json");
    std::fs::write(&profile, MKDIR_EDQUOT)?;
    let opt = format!("seccomp={}", profile.display());
    let script = "mkdir /tmp/d; echo mkdir=$?; touch /tmp/f && echo touch=ok";
    let check = |who: &str, text: &str| {
        assert!(
            text.contains("mkdir=1") && text.contains("quota") && text.contains("touch=ok"),
            "{who}: {text}\n{}",
            berthd.log()
        );
    };
    let out = berthd
        .berth()?
        .args(["run", "--rm", "--security-opt", &opt, "busybox", "sh", "-c"])
        .arg(script)
        .output()?;
    check(
        "berth",
        &format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    );
    // The docker CLI (28) sends the file's contents in HostConfig.SecurityOpt too;
    // berth has no attach yet, so it runs detached and its log is read.
    if !Path::new("/usr/local/bin/docker").exists() {
        eprintln!("skipped: the docker 28 CLI's seccomp=FILE (no /usr/local/bin/docker here)");
    } else {
        run_ok(berthd.docker().args([
            "run",
            "-d",
            "--name",
            "dseccomp",
            "--security-opt",
            &opt,
            "busybox",
            "sh",
            "-c",
            script,
        ]))?;
        run_ok(berthd.docker().args(["wait", "dseccomp"]))?;
        let out = berthd.docker().args(["logs", "dseccomp"]).output()?;
        check(
            "docker",
            &format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }
    // A real-world profile in the same format (containers/common's, which podman
    // uses) converts and runs a shell under its filter.
    let distro = Path::new("/usr/share/containers/seccomp.json");
    if !distro.exists() {
        eprintln!(
            "skipped: containers/common's seccomp profile ({} is missing)",
            distro.display()
        );
    } else {
        let out = run_ok(berthd.berth()?.args([
            "run",
            "--rm",
            "--security-opt",
            &format!("seccomp={}", distro.display()),
            "busybox",
            "sh",
            "-c",
            "grep ^Seccomp: /proc/self/status && mkdir /tmp/d && echo made",
        ]))?;
        assert!(out.contains("Seccomp:\t2") && out.contains("made"), "{out}");
    }
    // An invalid profile is refused by the daemon with the reason.
    let bad = work.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#)?;
    let out = berthd
        .berth()?
        .args(["run", "--rm", "--security-opt"])
        .arg(format!("seccomp={}", bad.display()))
        .args(["busybox", "true"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("SCMP_ACT_SOMETIMES"), "{text}");
    // The default still applies without the option.
    let status = run_ok(berthd.berth()?.args([
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/d && echo made",
    ]))?;
    assert!(status.contains("made"), "{status}");
    Ok(())
}
