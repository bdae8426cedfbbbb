//! Issue 8's containers: a real berthd serving CRI on its socket, driven by the Rust
//! CRI client (k8s-cri). An image pulled from a loopback registry, a pod on a real CNI
//! bridge (/usr/lib/cni), containers created, started, exec'd into, listed, stopped
//! and removed; their CRI logs; a berthd killed with SIGKILL in the middle; and the pod
//! torn down leaving no mount, process, cgroup or directory behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

const BRIDGE: &str = "bcrie2e0";
const SUBNET: &str = "10.254.10.0/24";
/// In every container's command line, so leaked processes are easy to find.
const MARKER: &str = "crie2emarker";

/// A CRI client on berthd's socket, with its own tokio runtime.
struct Client {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
}

impl Client {
    fn new(socket: &Path) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            rt,
            socket: socket.to_path_buf(),
        })
    }

    fn channel(&self) -> Result<Channel> {
        let path = self.socket.clone();
        self.rt.block_on(async move {
            Endpoint::try_from("http://localhost")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .context("connecting to berthd's CRI socket")
        })
    }

    fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(self.channel()?))
    }

    fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.channel()?))
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn status(&self, id: &str) -> Result<cri::ContainerStatus> {
        let mut rt = self.runtime()?;
        let resp = self.block_on(rt.container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        }))?;
        resp.into_inner().status.context("no container status")
    }

    /// Polls until the container is in `state`.
    fn wait_state(&self, id: &str, state: cri::ContainerState) -> Result<cri::ContainerStatus> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = self.status(id)?;
            if st.state == state as i32 {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("container {id} never reached {state:?}: {st:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_and_start(
        &self,
        sandbox: &str,
        pod: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> Result<String> {
        let mut rt = self.runtime()?;
        let t = Instant::now();
        let id = self
            .block_on(rt.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.into(),
                config: Some(config),
                sandbox_config: Some(pod.clone()),
            }))?
            .into_inner()
            .container_id;
        let created = t.elapsed();
        let t = Instant::now();
        self.block_on(rt.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        }))?;
        eprintln!(
            "CreateContainer {:?}, StartContainer {:?}",
            created,
            t.elapsed()
        );
        Ok(id)
    }

    fn exec(&self, id: &str, cmd: &[&str], timeout: i64) -> Result<cri::ExecSyncResponse> {
        let mut rt = self.runtime()?;
        let resp = self.block_on(rt.exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        }))?;
        Ok(resp.into_inner())
    }

    fn list(&self, filter: cri::ContainerFilter) -> Result<Vec<String>> {
        let mut rt = self.runtime()?;
        let resp = self.block_on(rt.list_containers(cri::ListContainersRequest {
            filter: Some(filter),
        }))?;
        let mut ids: Vec<String> = resp
            .into_inner()
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn container(name: &str, image: &str, script: &str, log: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into(), MARKER.into()],
        envs: vec![cri::KeyValue {
            key: "GREETING".into(),
            value: "hello from cri".into(),
        }],
        labels: HashMap::from([("name".to_string(), name.to_string())]),
        annotations: HashMap::from([("note".to_string(), format!("{name}-kept"))]),
        log_path: log.into(),
        ..Default::default()
    }
}

/// `<RFC3339Nano> <stream> <P|F> <content>` lines of a CRI log, as (stream, tag, content).
fn cri_log(path: &Path) -> Result<Vec<(String, String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(ts), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("not a CRI log line: {line:?}");
        };
        if !ts.contains('T') || !(ts.ends_with('Z') || ts.contains('+')) {
            bail!("not an RFC 3339 timestamp in {line:?}");
        }
        out.push((
            stream.to_string(),
            tag.to_string(),
            parts.next().unwrap_or_default().to_string(),
        ));
    }
    Ok(out)
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                out.push(format!("{name}: {cmdline}"));
            }
        }
    }
    out
}

/// `<hierarchy>/<rel>` for every mounted cgroup hierarchy (v1 controllers or v2) that
/// has it.
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path()),
    );
    roots
        .into_iter()
        .map(|r| r.join(rel))
        .filter(|p| p.is_dir())
        .collect()
}

/// The value of a cgroup file for `rel` under the v1 `controller` or v2.
fn cgroup_file(controller: &str, rel: &str, v1: &str, v2: &str) -> Result<String> {
    let v1_path = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(rel)
        .join(v1);
    let v2_path = Path::new("/sys/fs/cgroup").join(rel).join(v2);
    for p in [v1_path, v2_path] {
        if let Ok(s) = std::fs::read_to_string(&p) {
            return Ok(s.trim().to_string());
        }
    }
    bail!("no {v1}/{v2} for cgroup {rel}")
}

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

/// Removes a pod (its containers, namespaces, network) when a test ends early, so a
/// failed run leaves no pinned namespace mounted in the test's directory.
struct PodGuard {
    socket: PathBuf,
    id: String,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let Ok(client) = Client::new(&self.socket) else {
            return;
        };
        if let Ok(mut rt) = client.runtime() {
            let _ = client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: self.id.clone(),
            }));
        }
    }
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
        if procs.is_empty() && shims.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("left running: {procs:?} {shims:?}");
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

/// A host-network pod (no CNI) whose container has limits, a security context and a
/// read-only bind mount, each checked from inside the container or its cgroup.
#[test]
fn cri_container_resources_security_and_mounts() -> Result<()> {
    require_root();
    let img_dir = tempfile::tempdir()?;
    let img = berth_fixtures::images::base(img_dir.path())?;
    let registry = berth_fixtures::Registry::start()?;
    let image = registry.push(&img, "crie2e/busybox:sec")?;
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("f"), "from the host\n")?;
    // An empty CNI dir: this pod needs none.
    let conf_dir = work.path().join("net.d");
    std::fs::create_dir_all(&conf_dir)?;
    let config = format!(
        "[cni]\nconf_dir = {:?}\n\n[registries.\"{}\"]\ninsecure = true\n",
        conf_dir.display().to_string(),
        registry.host()
    );
    let berthd = Berthd::start_with_config(&config)?;
    let client = Client::new(&berthd.cri_socket())?;
    let mut rt = client.runtime()?;
    let mut images = client.images()?;
    client.block_on(images.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }))?;
    let cgroup_parent = "crie2e-pod";
    let pod = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "crisec".into(),
            namespace: "default".into(),
            uid: "uid-crisec".into(),
            attempt: 0,
        }),
        log_directory: work.path().join("logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = client
        .block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        }))?
        .into_inner()
        .pod_sandbox_id;
    let _pod_guard = PodGuard {
        socket: berthd.cri_socket(),
        id: sandbox.clone(),
    };

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
            ..Default::default()
        }),
    });
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
    let talker_log = work.path().join("logs/talker/0.log");
    let rotated = work.path().join("logs/talker/0.log.1");
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
    // The pod's cgroup parent is kubelet's to remove; the test made it, the test removes it.
    for dir in cgroup_dirs(cgroup_parent) {
        let _ = std::fs::remove_dir(dir);
    }
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    Ok(())
}
