//! CRI container configuration through a real berthd: resources (and their update),
//! security context, mounts, devices, oom_score_adj clamping, OOM kills, stats and log
//! rotation, each checked from inside the container or in its cgroup.

mod cri_common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_e2e::{require_root, run_ok};
use cri_common::{cgroup_dirs, cgroup_file, container, cri_log, mounts_under, setup_base};
use k8s_cri::v1 as cri;

/// A host-network pod (no CNI) whose container has limits, a security context and a
/// read-only bind mount, each checked from inside the container or its cgroup.
#[test]
fn cri_container_resources_security_and_mounts() -> Result<()> {
    require_root();
    // The pod's cgroup parent is kubelet's to remove; the test made it, the test
    // removes it, also when it fails: declared first, it drops last.
    let cgroup_parent = "crie2e-pod";
    let _cgroups = berth_fixtures::cgroups::CgroupGuard::new(cgroup_parent);
    let s = setup_base("crie2e/busybox", "")?;
    let (berthd, client, image) = (&s.berthd, &s.client, s.base());
    let work = s.work.as_path();
    let data = work.join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("f"), "from the host\n")?;
    let mut rt = client.runtime()?;
    let pod = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "crisec".into(),
            namespace: "default".into(),
            uid: "uid-crisec".into(),
            attempt: 0,
        }),
        log_directory: work.join("logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            // An IPC-namespace sysctl (the pod's IPC namespace is its own).
            sysctls: [("kernel.shm_rmid_forced".to_string(), "1".to_string())].into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    // kubelet's default: each container its own PID namespace.
                    pid: cri::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (sandbox, _pod_guard) = s.start_pod(&pod)?;

    let mut limited = container(
        "limited",
        &image,
        "while true; do sleep 1; done",
        "limited/0.log",
    );
    limited.mounts = vec![cri::Mount {
        container_path: "/data".into(),
        host_path: data.display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    limited.devices = vec![cri::Device {
        container_path: "/dev/cri-zero".into(),
        host_path: "/dev/zero".into(),
        permissions: "rw".into(),
    }];
    limited.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 512,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            oom_score_adj: 500,
            ..Default::default()
        }),
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 33 }),
            run_as_group: Some(cri::Int64Value { value: 33 }),
            readonly_rootfs: true,
            seccomp: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
    });
    let host_shm_rmid = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced")?;
    let id = client.create_and_start(&sandbox, &pod, limited)?;
    client.wait_state(&id, cri::ContainerState::ContainerRunning)?;
    let sh = |script: &str| -> Result<(i32, String)> {
        let r = client.exec(&id, &["sh", "-c", script], 10)?;
        Ok((
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).trim().to_string(),
        ))
    };
    assert_eq!(sh("id -u; id -g")?, (0, "33\n33".to_string()));
    assert_eq!(sh("cat /proc/1/oom_score_adj")?, (0, "500".to_string()));
    assert_eq!(sh("cat /data/f")?, (0, "from the host".to_string()));
    // The pod's sysctl inside, the host's untouched; RuntimeDefault loads a filter.
    assert_eq!(
        sh("cat /proc/sys/kernel/shm_rmid_forced")?,
        (0, "1".to_string())
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced")?,
        host_shm_rmid
    );
    assert_eq!(
        sh("grep ^Seccomp: /proc/self/status")?,
        (0, "Seccomp:\t2".to_string())
    );
    assert_eq!(
        sh("head -c 4 /dev/cri-zero | wc -c")?,
        (0, "4".to_string()),
        "the CRI device"
    );
    assert_ne!(sh("touch /data/g 2>/dev/null")?.0, 0, "/data is read-only");
    assert_ne!(
        sh("touch /probe 2>/dev/null")?.0,
        0,
        "the root is read-only"
    );
    // Host network: the host's interfaces and hostname.
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    assert_eq!(sh("hostname")?, (0, host_name.trim().to_string()));
    let rel = format!("{cgroup_parent}/{id}");
    assert_eq!(
        cgroup_file("memory", &rel, "memory.limit_in_bytes", "memory.max")?,
        (64u64 << 20).to_string()
    );
    // UpdateContainerResources reaches the running container's cgroup and its status.
    client.block_on(
        rt.update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 128 << 20,
                cpu_shares: 512,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                ..Default::default()
            }),
            ..Default::default()
        }),
    )?;
    assert_eq!(
        cgroup_file("memory", &rel, "memory.limit_in_bytes", "memory.max")?,
        (128u64 << 20).to_string()
    );
    let reported = client
        .status(&id)?
        .resources
        .and_then(|r| r.linux)
        .map(|l| l.memory_limit_in_bytes);
    assert_eq!(reported, Some(128 << 20));
    let shares = cgroup_file("cpu", &rel, "cpu.shares", "cpu.weight")?;
    let quota = cgroup_file("cpu", &rel, "cpu.cfs_quota_us", "cpu.max")?;
    if Path::new("/sys/fs/cgroup/cpu").is_dir() {
        assert_eq!(shares, "512");
    }
    assert!(quota.starts_with("50000"), "cpu quota {quota}");

    // Lowering oom_score_adj below berthd's needs CAP_SYS_RESOURCE: without it the
    // value is clamped rather than failing the start.
    let mut low = container("low-oom", &image, "sleep 1000", "low/0.log");
    low.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            oom_score_adj: -998,
            ..Default::default()
        }),
        ..Default::default()
    });
    let low_id = client.create_and_start(&sandbox, &pod, low)?;
    client.wait_state(&low_id, cri::ContainerState::ContainerRunning)?;
    let r = client.exec(&low_id, &["cat", "/proc/1/oom_score_adj"], 10)?;
    let adj: i64 = String::from_utf8_lossy(&r.stdout).trim().parse()?;
    // berthd inherits this test's value; CapEff bit 24 is CAP_SYS_RESOURCE.
    let own: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")?
        .trim()
        .parse()?;
    let cap_eff = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let expected = if cap_eff & (1 << 24) != 0 {
        -998
    } else {
        own.max(-998)
    };
    assert_eq!(adj, expected, "oom_score_adj");

    // Stats: the cgroup's CPU and memory, the writable layer's bytes.
    let r = client.exec(
        &low_id,
        &["dd", "if=/dev/zero", "of=/big", "bs=1024", "count=512"],
        10,
    )?;
    assert_eq!(r.exit_code, 0, "{}", String::from_utf8_lossy(&r.stderr));
    let stats = client
        .block_on(rt.container_stats(cri::ContainerStatsRequest {
            container_id: low_id.clone(),
        }))?
        .into_inner()
        .stats
        .context("no stats")?;
    let cpu = stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value);
    assert!(cpu.is_some_and(|v| v > 0), "cpu {cpu:?}");
    let mem = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value);
    assert!(mem.is_some_and(|v| v > 0), "memory {mem:?}");
    let layer = stats
        .writable_layer
        .and_then(|w| w.used_bytes)
        .map(|v| v.value);
    assert!(
        layer.is_some_and(|v| v >= 512 * 1024),
        "writable layer {layer:?}"
    );
    let listed = client
        .block_on(rt.list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(cri::ContainerStatsFilter {
                pod_sandbox_id: sandbox.clone(),
                ..Default::default()
            }),
        }))?
        .into_inner()
        .stats;
    let mut ids: Vec<String> = listed
        .into_iter()
        .filter_map(|s| s.attributes.map(|a| a.id))
        .collect();
    ids.sort();
    let mut want = vec![id.clone(), low_id.clone()];
    want.sort();
    assert_eq!(ids, want);

    // Log rotation as kubelet does it: rename the log away, ReopenContainerLog, and
    // the shim goes on in a new file at the same path; no line is split or lost.
    let talker = client.create_and_start(
        &sandbox,
        &pod,
        container(
            "talker",
            &image,
            "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.02; done",
            "talker/0.log",
        ),
    )?;
    let talker_log = work.join("logs/talker/0.log");
    let rotated = work.join("logs/talker/0.log.1");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(&talker_log, &rotated)?;
    client.block_on(rt.reopen_container_log(cri::ReopenContainerLogRequest {
        container_id: talker.clone(),
    }))?;
    assert!(talker_log.exists(), "no new log after ReopenContainerLog");
    std::thread::sleep(Duration::from_millis(300));
    client.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: talker.clone(),
        timeout: 0,
    }))?;
    let lines: Vec<String> = cri_log(&rotated)?
        .into_iter()
        .chain(cri_log(&talker_log)?)
        .map(|(_, tag, content)| {
            assert_eq!(tag, "F", "{content}");
            content
        })
        .collect();
    let expected: Vec<String> = (0..lines.len()).map(|i| format!("line-{i}")).collect();
    assert_eq!(lines, expected);
    assert!(
        !cri_log(&talker_log)?.is_empty(),
        "nothing written after the reopen"
    );

    // A container over its memory limit: killed by the kernel, reason OOMKilled.
    let mut hog = container(
        "hog",
        &image,
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        "hog/0.log",
    );
    hog.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let hog_id = client.create_and_start(&sandbox, &pod, hog)?;
    let st = client.wait_state(&hog_id, cri::ContainerState::ContainerExited)?;
    assert_eq!(
        (st.reason.as_str(), st.exit_code),
        ("OOMKilled", 137),
        "{st:?}"
    );
    let oom = run_ok(
        berthd
            .berth()?
            .args(["inspect", "-f", "{{.State.OOMKilled}}", &hog_id]),
    )?;
    assert_eq!(oom.trim(), "true");

    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    assert!(client.list(cri::ContainerFilter::default())?.is_empty());
    for cid in [&id, &low_id, &hog_id, &talker] {
        let left = cgroup_dirs(&format!("{cgroup_parent}/{cid}"));
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
    }
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    Ok(())
}

/// A pod with one PID namespace (shareProcessNamespace): berth's pod init is its PID
/// 1, containers see each other's processes, and the init goes with the pod.
#[test]
fn cri_pod_shares_one_pid_namespace() -> Result<()> {
    require_root();
    let s = setup_base("crie2e/busybox", "")?;
    let (berthd, client, image) = (&s.berthd, &s.client, s.base());
    let work = s.work.as_path();
    let mut rt = client.runtime()?;
    let shared = cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        pid: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    };
    let pod = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "cripid".into(),
            namespace: "default".into(),
            uid: "uid-cripid".into(),
            attempt: 0,
        }),
        log_directory: work.join("logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(shared.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (sandbox, _pod_guard) = s.start_pod(&pod)?;
    let init_pid: i32 = std::fs::read_to_string(
        berthd
            .state()
            .join("cri/pods")
            .join(&sandbox)
            .join("pod-init.pid"),
    )?
    .trim()
    .parse()?;
    // PodSandboxStatus' verbose info names that init as the pod's process.
    let verbose = client
        .block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: true,
        }))?
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&verbose.info["info"])?;
    assert_eq!(info["pid"].as_i64(), Some(i64::from(init_pid)), "{info}");
    let in_pod = |name: &str, script: &str| {
        let mut c = container(name, &image, script, &format!("{name}/0.log"));
        c.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(shared.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    };
    let a = client.create_and_start(
        &sandbox,
        &pod,
        in_pod("a", "while true; do sleep 1; done; echo crie2e-a-proc"),
    )?;
    let b = client.create_and_start(&sandbox, &pod, in_pod("b", "sleep 1000"))?;
    client.wait_state(&a, cri::ContainerState::ContainerRunning)?;
    client.wait_state(&b, cri::ContainerState::ContainerRunning)?;
    let r = client.exec(&b, &["cat", "/proc/1/cmdline"], 10)?;
    let init = String::from_utf8_lossy(&r.stdout).replace('\0', " ");
    assert!(init.contains("pod-init"), "PID 1 of the pod is {init:?}");
    let r = client.exec(&b, &["ps", "-o", "args"], 10)?;
    let ps = String::from_utf8_lossy(&r.stdout);
    assert!(
        ps.contains("crie2e-a-proc"),
        "b does not see a's processes:\n{ps}"
    );

    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{init_pid}")).exists() {
        let zombie = std::fs::read_to_string(format!("/proc/{init_pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if zombie {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pod init {init_pid} outlived its pod"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!berthd.state().join("cri/pid").join(&sandbox).exists());
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    Ok(())
}
