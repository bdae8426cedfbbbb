//! What the CRI e2e tests share: a berthd with a loopback registry and pulled fixture
//! images, a Rust CRI client (k8s-cri) on berthd's socket, pod and container configs,
//! CRI log parsing, and probes for leftovers (mounts, processes, cgroups).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// A berthd on a private root, a loopback registry holding the test's fixture images,
/// all pulled through CRI, and a CRI client. Fields drop in order: the client, then
/// berthd (removing its containers), then the registry and the directories.
pub struct Setup {
    pub client: Client,
    pub berthd: berth_e2e::Berthd,
    pub registry: berth_fixtures::Registry,
    /// The reference of each image by its tag.
    pub refs: HashMap<String, String>,
    /// The test's own directory: `net.d` (the CNI conf dir, empty), logs.
    pub work: PathBuf,
    _img_dirs: Vec<tempfile::TempDir>,
    _work: tempfile::TempDir,
}

/// Builds one fixture image into the directory it is given.
pub type Build<'a> = &'a dyn Fn(&Path) -> Result<berth_fixtures::BuiltImage>;

/// [`Setup`] with the images `(tag, build)` pushed as `<repo>:<tag>`; `extra_config` is
/// appended to berthd's config (TOML). The CNI conf dir starts empty, so pods use the
/// host's network unless the test writes a conflist into `work/net.d`.
pub fn setup(repo: &str, images: &[(&str, Build)], extra_config: &str) -> Result<Setup> {
    let work = tempfile::tempdir()?;
    let registry = berth_fixtures::Registry::start()?;
    let mut dirs = Vec::new();
    let mut refs = HashMap::new();
    for (tag, build) in images {
        let dir = tempfile::tempdir()?;
        let img = build(dir.path())?;
        refs.insert(
            tag.to_string(),
            registry.push(&img, &format!("{repo}:{tag}"))?,
        );
        dirs.push(dir);
    }
    let conf_dir = work.path().join("net.d");
    std::fs::create_dir_all(&conf_dir)?;
    let config = format!(
        "[cni]\nconf_dir = {:?}\n\n[registries.\"{}\"]\ninsecure = true\n{extra_config}",
        conf_dir.display().to_string(),
        registry.host()
    );
    let berthd = berth_e2e::Berthd::start_with_config(&config)?;
    let client = Client::new(&berthd.cri_socket())?;
    let mut images = client.images()?;
    for r in refs.values() {
        client.block_on(images.pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: r.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))?;
    }
    Ok(Setup {
        client,
        berthd,
        registry,
        refs,
        work: work.path().to_path_buf(),
        _img_dirs: dirs,
        _work: work,
    })
}

/// [`setup`] with the fixtures' base busybox image alone, tagged `base`.
pub fn setup_base(repo: &str, extra_config: &str) -> Result<Setup> {
    setup(
        repo,
        &[("base", &|d: &Path| berth_fixtures::images::base(d))],
        extra_config,
    )
}

impl Setup {
    /// RunPodSandbox of `pod` with the default handler, and a guard that removes it
    /// when the test ends, whichever way.
    pub fn start_pod(&self, pod: &cri::PodSandboxConfig) -> Result<(String, PodGuard)> {
        let id = run_pod(&self.client, pod, "")?;
        let guard = PodGuard {
            socket: self.berthd.cri_socket(),
            id: id.clone(),
        };
        Ok((id, guard))
    }

    /// The reference of the image tagged `base`.
    pub fn base(&self) -> String {
        self.refs["base"].clone()
    }
}

/// A pod on the host's network with a PID namespace per container; logs under
/// `work/logs/<name>`, label `suite=<name>`.
pub fn host_pod(name: &str, work: &Path) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        labels: HashMap::from([("suite".to_string(), name.to_string())]),
        log_directory: work.join("logs").join(name).display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// RunPodSandbox with the runtime handler `handler` (empty: the default).
pub fn run_pod(client: &Client, pod: &cri::PodSandboxConfig, handler: &str) -> Result<String> {
    let mut rt = client.runtime()?;
    Ok(client
        .block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: handler.into(),
        }))?
        .into_inner()
        .pod_sandbox_id)
}

/// In every container's command line, so leaked processes are easy to find.
pub const MARKER: &str = "crie2emarker";

/// A CRI client on berthd's socket, with its own tokio runtime.
pub struct Client {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            rt,
            socket: socket.to_path_buf(),
        })
    }

    pub fn channel(&self) -> Result<Channel> {
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

    pub fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(self.channel()?))
    }

    pub fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.channel()?))
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn status(&self, id: &str) -> Result<cri::ContainerStatus> {
        let mut rt = self.runtime()?;
        let resp = self.block_on(rt.container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        }))?;
        resp.into_inner().status.context("no container status")
    }

    /// Polls until the container is in `state`.
    pub fn wait_state(&self, id: &str, state: cri::ContainerState) -> Result<cri::ContainerStatus> {
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

    pub fn create_and_start(
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

    pub fn exec(&self, id: &str, cmd: &[&str], timeout: i64) -> Result<cri::ExecSyncResponse> {
        let mut rt = self.runtime()?;
        let resp = self.block_on(rt.exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        }))?;
        Ok(resp.into_inner())
    }

    pub fn list(&self, filter: cri::ContainerFilter) -> Result<Vec<String>> {
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

pub fn container(name: &str, image: &str, script: &str, log: &str) -> cri::ContainerConfig {
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
pub fn cri_log(path: &Path) -> Result<Vec<(String, String, String)>> {
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

pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

// Not every test that includes this module looks for processes.
#[allow(unused_imports)]
pub use berth_e2e::processes_with;

/// `<hierarchy>/<rel>` for every mounted cgroup hierarchy (v1 controllers or v2) that
/// has it.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
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
pub fn cgroup_file(controller: &str, rel: &str, v1: &str, v2: &str) -> Result<String> {
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

/// Removes a pod (its containers, namespaces, network) when a test ends early, so a
/// failed run leaves no pinned namespace mounted in the test's directory.
pub struct PodGuard {
    pub socket: PathBuf,
    pub id: String,
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
