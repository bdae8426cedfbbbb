//! Issue 8's containers: a real berthd serving CRI on its socket, driven by the Rust
//! CRI client (k8s-cri). An image pulled from a loopback registry, a pod on a real CNI
//! bridge (/usr/lib/cni), containers created, started, exec'd into, listed, stopped
//! and removed; their CRI logs; a berthd killed with SIGKILL in the middle; and the pod
//! torn down leaving no mount, process, cgroup or directory behind.

mod cri_common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};
use k8s_cri::v1 as cri;

use cri_common::{
    cgroup_dirs, container, cri_log, mounts_under, processes_with, Client, PodGuard, MARKER,
};

const BRIDGE: &str = "bcrie2e0";
const SUBNET: &str = "10.254.10.0/24";

fn write_cni_conf(dir: &Path) -> Result<PathBuf> {
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "crie2e-net",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                      "dataDir": dir.join("ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]
    });
    std::fs::write(
        conf_dir.join("10-crie2e.conflist"),
        serde_json::to_vec_pretty(&conf)?,
    )?;
    Ok(conf_dir)
}

/// Removes the test's bridge whatever happens.
struct BridgeGuard;

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", BRIDGE])
            .output();
    }
}

#[test]
fn cri_pods_and_containers_through_berthd() -> Result<()> {
    require_root();
    let _bridge = BridgeGuard;
    let work = tempfile::tempdir()?;
    let img_dir = tempfile::tempdir()?;
    let img = berth_fixtures::images::base(img_dir.path())?;
    let registry = berth_fixtures::Registry::start()?;
    let image = registry.push(&img, "crie2e/busybox:v1")?;
    let conf_dir = write_cni_conf(work.path())?;
    let config = format!(
        "[cni]\nconf_dir = {:?}\nbin_dirs = [\"/usr/lib/cni\", \"/opt/cni/bin\"]\n\n[registries.\"{}\"]\ninsecure = true\n",
        conf_dir.display().to_string(),
        registry.host()
    );
    let mut berthd = Berthd::start_with_config(&config)?;
    let client = Client::new(&berthd.cri_socket())?;
    let mut rt = client.runtime()?;
    let version = client
        .block_on(rt.version(cri::VersionRequest::default()))?
        .into_inner();
    assert_eq!(version.runtime_name, "berth");

    // Pull through CRI: the Docker API side sees the same image.
    let mut images = client.images()?;
    let image_ref = client
        .block_on(images.pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))?
        .into_inner()
        .image_ref;
    assert_eq!(image_ref, img.config_digest);
    let berth_images = run_ok(berthd.berth()?.args(["images", "--no-trunc"]))?;
    assert!(
        berth_images.contains(&img.config_digest),
        "berth images does not list the CRI-pulled image:\n{berth_images}"
    );

    // A pod on the CNI bridge.
    let log_dir = work.path().join("logs/pod");
    let pod = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "crie2e".into(),
            namespace: "default".into(),
            uid: "uid-crie2e".into(),
            attempt: 0,
        }),
        hostname: "crie2e-host".into(),
        log_directory: log_dir.display().to_string(),
        ..Default::default()
    };
    let t = Instant::now();
    let sandbox = client
        .block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        }))?
        .into_inner()
        .pod_sandbox_id;
    eprintln!("RunPodSandbox (CNI bridge) {:?}", t.elapsed());
    let _pod_guard = PodGuard {
        socket: berthd.cri_socket(),
        id: sandbox.clone(),
    };
    let pod_ip = client
        .block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: false,
        }))?
        .into_inner()
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .context("the pod has no network status")?;
    assert!(pod_ip.starts_with("10.254.10."), "pod ip {pod_ip}");

    // A container that writes to stdout and stderr and exits 3.
    let t0 = Instant::now();
    let echo = client.create_and_start(
        &sandbox,
        &pod,
        container(
            "echo",
            &image,
            "echo \"out $GREETING\"; echo err-line >&2; exit 3",
            "echo/0.log",
        ),
    )?;
    let st = client.wait_state(&echo, cri::ContainerState::ContainerExited)?;
    eprintln!("create+start+exit of a container: {:?}", t0.elapsed());
    assert_eq!(st.exit_code, 3);
    assert_eq!(st.reason, "Error");
    assert!(
        st.started_at > 0 && st.finished_at >= st.started_at,
        "{st:?}"
    );
    assert!(
        st.created_at > 0 && st.created_at <= st.started_at,
        "{st:?}"
    );
    assert_eq!(st.image_ref, img.config_digest);
    assert_eq!(st.metadata.as_ref().map(|m| m.name.as_str()), Some("echo"));
    assert_eq!(
        st.annotations.get("note").map(String::as_str),
        Some("echo-kept")
    );
    // An exited container is neither started again nor exec'd into.
    let again = client.block_on(rt.start_container(cri::StartContainerRequest {
        container_id: echo.clone(),
    }));
    assert_eq!(
        again.err().map(|s| s.code()),
        Some(tonic::Code::FailedPrecondition)
    );
    let exec_exited = client.exec(&echo, &["true"], 5).err();
    assert_eq!(
        exec_exited.and_then(|e| e.downcast_ref::<tonic::Status>().map(|s| s.code())),
        Some(tonic::Code::FailedPrecondition)
    );
    let verbose = client
        .block_on(rt.container_status(cri::ContainerStatusRequest {
            container_id: echo.clone(),
            verbose: true,
        }))?
        .into_inner();
    let info: serde_json::Value =
        serde_json::from_str(verbose.info.get("info").context("no verbose info")?)?;
    assert_eq!(info["sandboxID"], sandbox.as_str(), "{info}");
    let log_path = log_dir.join("echo/0.log");
    assert_eq!(st.log_path, log_path.display().to_string());
    let mut lines = cri_log(&log_path)?;
    lines.sort();
    assert_eq!(
        lines,
        vec![
            ("stderr".into(), "F".into(), "err-line".into()),
            ("stdout".into(), "F".into(), "out hello from cri".into()),
        ]
    );

    // A long-running container: exec into it, check the pod's namespaces and files.
    let sleeper_script =
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
    let mut sleeper_config = container("sleeper", &image, sleeper_script, "sleeper/0.log");
    sleeper_config
        .labels
        .insert("tier".to_string(), "sleep".to_string());
    let sleeper = client.create_and_start(&sandbox, &pod, sleeper_config)?;
    client.wait_state(&sleeper, cri::ContainerState::ContainerRunning)?;
    let r = client.exec(
        &sleeper,
        &["sh", "-c", "echo hi; echo oops >&2; exit 7"],
        10,
    )?;
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"hi\n"[..], &b"oops\n"[..], 7)
    );
    let r = client.exec(&sleeper, &["hostname"], 10)?;
    assert_eq!(String::from_utf8_lossy(&r.stdout), "crie2e-host\n");
    let r = client.exec(&sleeper, &["cat", "/etc/hostname", "/etc/hosts"], 10)?;
    let files = String::from_utf8_lossy(&r.stdout);
    assert!(files.starts_with("crie2e-host\n"), "{files}");
    assert!(
        files.contains(&pod_ip),
        "/etc/hosts lacks the pod ip: {files}"
    );
    let r = client.exec(&sleeper, &["ip", "-o", "-4", "addr", "show", "eth0"], 10)?;
    let addr = String::from_utf8_lossy(&r.stdout);
    assert!(addr.contains(&pod_ip), "eth0 in the container: {addr}");
    // The pod's /dev/shm is one tmpfs for all its containers.
    let r = client.exec(&sleeper, &["sh", "-c", "echo pod-shared > /dev/shm/f"], 10)?;
    assert_eq!(r.exit_code, 0, "{}", String::from_utf8_lossy(&r.stderr));
    let r = client.exec(&sleeper, &["sh", "-c", "echo $$; echo $GREETING"], 10)?;
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).lines().nth(1),
        Some("hello from cri")
    );
    // A timed-out exec is killed and answered DeadlineExceeded.
    let t = Instant::now();
    let err = client
        .exec(&sleeper, &["sleep", "30"], 1)
        .err()
        .context("a 30 s exec with a 1 s timeout succeeded")?;
    let code = err
        .downcast_ref::<tonic::Status>()
        .map(|s| s.code())
        .context("not a gRPC status")?;
    assert_eq!(code, tonic::Code::DeadlineExceeded, "{err:#}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // Filters.
    let all = {
        let mut v = vec![echo.clone(), sleeper.clone()];
        v.sort();
        v
    };
    assert_eq!(client.list(cri::ContainerFilter::default())?, all);
    assert_eq!(
        client.list(cri::ContainerFilter {
            pod_sandbox_id: sandbox.clone(),
            ..Default::default()
        })?,
        all
    );
    assert_eq!(
        client.list(cri::ContainerFilter {
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning as i32
            }),
            ..Default::default()
        })?,
        vec![sleeper.clone()]
    );
    assert_eq!(
        client.list(cri::ContainerFilter {
            label_selector: HashMap::from([("tier".to_string(), "sleep".to_string())]),
            ..Default::default()
        })?,
        vec![sleeper.clone()]
    );
    assert_eq!(
        client.list(cri::ContainerFilter {
            id: echo[..12].to_string(),
            ..Default::default()
        })?,
        vec![echo.clone()]
    );
    assert!(client
        .list(cri::ContainerFilter {
            pod_sandbox_id: "0000nonexistent".into(),
            ..Default::default()
        })?
        .is_empty());
    // An image berth does not have is NotFound (kubelet pulls first).
    let missing = client.block_on(rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: sandbox.clone(),
        config: Some(container(
            "ghost",
            "nonexistent/image:v1",
            "true",
            "ghost/0.log",
        )),
        sandbox_config: Some(pod.clone()),
    }));
    assert_eq!(missing.err().map(|s| s.code()), Some(tonic::Code::NotFound));
    // The same container name in the same pod and attempt is AlreadyExists.
    let dup = client.block_on(rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: sandbox.clone(),
        config: Some(container("echo", &image, "true", "echo/1.log")),
        sandbox_config: Some(pod.clone()),
    }));
    assert_eq!(
        dup.err().map(|s| s.code()),
        Some(tonic::Code::AlreadyExists)
    );

    // berthd killed outright: the container runs on and is still under control.
    berthd.kill9()?;
    std::thread::sleep(Duration::from_millis(500));
    berthd.restart()?;
    let client = Client::new(&berthd.cri_socket())?;
    let mut rt = client.runtime()?;
    let st = client.status(&sleeper)?;
    assert_eq!(
        st.state,
        cri::ContainerState::ContainerRunning as i32,
        "{}",
        berthd.log()
    );
    let r = client.exec(&sleeper, &["echo", "after-restart"], 10)?;
    assert_eq!(String::from_utf8_lossy(&r.stdout), "after-restart\n");
    assert_eq!(client.status(&echo)?.exit_code, 3);

    // StopContainer: SIGTERM reaches the trap, the exit is 0 and logged.
    client.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: sleeper.clone(),
        timeout: 10,
    }))?;
    let st = client.wait_state(&sleeper, cri::ContainerState::ContainerExited)?;
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
    let logged: Vec<String> = cri_log(&log_dir.join("sleeper/0.log"))?
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(logged, ["ready", "got-term"]);
    // Stopping again, and stopping or removing the unknown, are fine.
    client.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: sleeper.clone(),
        timeout: 1,
    }))?;
    client.block_on(rt.remove_container(cri::RemoveContainerRequest {
        container_id: "0000nonexistent".into(),
    }))?;

    // RemoveContainer.
    client.block_on(rt.remove_container(cri::RemoveContainerRequest {
        container_id: echo.clone(),
    }))?;
    let gone = client.status(&echo);
    assert_eq!(
        gone.err()
            .and_then(|e| e.downcast_ref::<tonic::Status>().map(|s| s.code())),
        Some(tonic::Code::NotFound)
    );
    assert_eq!(
        client.list(cri::ContainerFilter::default())?,
        vec![sleeper.clone()]
    );

    // A running container when the pod is stopped and removed: everything goes.
    let late = client.create_and_start(
        &sandbox,
        &pod,
        container("late", &image, "while true; do sleep 1; done", "late/0.log"),
    )?;
    client.wait_state(&late, cri::ContainerState::ContainerRunning)?;
    let r = client.exec(&late, &["cat", "/dev/shm/f"], 10)?;
    assert_eq!(String::from_utf8_lossy(&r.stdout), "pod-shared\n");
    assert!(!processes_with(MARKER).is_empty());
    client.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    let st = client.status(&late)?;
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    assert!(client.list(cri::ContainerFilter::default())?.is_empty());
    let pods = client
        .block_on(rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()))?
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");

    // Nothing left: no mounts under berthd's dirs, no container or shim processes, no
    // cgroups, no bundles or snapshots of the containers.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = processes_with(MARKER);
        let shims: Vec<String> = [&echo, &sleeper, &late]
            .iter()
            .flat_map(|id| processes_with(&format!("-id {id}")))
            .collect();
        // The pod's init (pid mode POD is CRI's default) goes with the pod too.
        let inits = processes_with(&format!(
            "{} pod-init",
            berth_e2e::binary("berthd")?.display()
        ));
        if procs.is_empty() && shims.is_empty() && inits.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("left running: {procs:?} {shims:?} {inits:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    for id in [&echo, &sleeper, &late] {
        let cgroups = cgroup_dirs(&format!("berth/{id}"));
        assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
        assert!(
            !berthd.root().join("containers").join(id).exists(),
            "bundle of {id} left behind"
        );
    }
    let ps = run_ok(berthd.berth()?.args(["ps", "-aq"]))?;
    assert_eq!(ps.trim(), "", "containers left in the engine");
    Ok(())
}
