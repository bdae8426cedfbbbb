//! RunPodSandbox and pod teardown: berth's CRI server vs containerd 1.6's built-in CRI,
//! driven by the same Rust CRI client, interleaved rounds, medians and ratios.
//! Run through `hack/bench/cri.sh` (root).
//!
//! Both runtimes get private root/state dirs, their own bridge and subnet, and the same
//! CNI plugins (/usr/lib/cni). containerd's pause image (a busybox `sleep`) is served by a
//! docker-registry on loopback and pulled in a warm-up round that is not measured.
//! berth's server runs in a separate process of this binary (`serve`), as berthd would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_cri_server::{Cri, CriConfig, ImageParts};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") if args.len() == 4 => serve(Path::new(&args[2]), Path::new(&args[3])),
        Some("bench") if args.len() == 3 => bench(args[2].parse().context("rounds")?),
        _ => bail!("usage: cri_bench bench ROUNDS | cri_bench serve DIR SOCKET"),
    }
}

fn conflist(dir: &Path, bridge: &str, subnet: &str) -> Result<PathBuf> {
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir)?;
    let conf = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": format!("{bridge}-net"),
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": dir.join("ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    std::fs::write(
        conf_dir.join("10-bench.conflist"),
        serde_json::to_vec_pretty(&conf)?,
    )?;
    Ok(conf_dir)
}

/// berth's CRI server on `socket`, state under `dir`, until killed.
fn serve(dir: &Path, socket: &Path) -> Result<()> {
    let root = dir.join("root");
    let cni = berth_cni::CniOptions {
        conf_dir: conflist(dir, "bbenchb0", "10.254.0.0/22")?,
        cache_dir: dir.join("state/cni"),
        default_network: None,
        ..Default::default()
    };
    let images = ImageParts {
        root: root.clone(),
        content: berth_snapshotter::ContentStore::open(&root)?,
        snapshots: Arc::new(berth_snapshotter::Snapshotter::open(&root)?),
        store: berth_image::ImageStore::open(&root)?,
    };
    let config = CriConfig {
        root,
        state: dir.join("state"),
        cni,
        registry: Default::default(),
        pod_init: None,
    };
    let cri = Cri::open(config, images, None)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = Cri::bind(socket)?;
        cri.serve(listener, std::future::pending()).await?;
        Ok(())
    })
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill with a pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn containerd(dir: &Path, registry: &str) -> Result<(Proc, PathBuf)> {
    let socket = dir.join("containerd.sock");
    let conf_dir = conflist(dir, "bbenchc0", "10.254.4.0/22")?;
    let config = format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  # Lowering oom_score_adj is not permitted on every host; keep containerd's own.
  restrict_oom_score_adj = true
  sandbox_image = "{registry}/pause:bench"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{conf_dir}"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        sock = socket.display(),
        conf_dir = conf_dir.display(),
    );
    std::fs::write(dir.join("config.toml"), config)?;
    let child = Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("containerd.log"))?)
        .spawn()
        .context("starting containerd")?;
    Ok((Proc(child), socket))
}

async fn connect(socket: &Path) -> Result<RuntimeServiceClient<Channel>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = socket.to_path_buf();
        let channel = Endpoint::try_from("http://localhost")?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await;
        if let Ok(channel) = channel {
            let mut client = RuntimeServiceClient::new(channel);
            if client.version(cri::VersionRequest::default()).await.is_ok() {
                return Ok(client);
            }
        }
        if Instant::now() > deadline {
            bail!("{} did not answer within 30 s", socket.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pod(round: usize, who: &str) -> cri::PodSandboxConfig {
    let name = format!("bench-{who}-{round}");
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            namespace: "bench".into(),
            uid: format!("uid-{who}-{round}"),
            attempt: 0,
        }),
        hostname: name,
        log_directory: format!("/tmp/berth-bench-logs/{who}-{round}"),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// (RunPodSandbox, Stop+Remove) in microseconds.
async fn round(
    client: &mut RuntimeServiceClient<Channel>,
    round: usize,
    who: &str,
) -> Result<(u128, u128)> {
    let t = Instant::now();
    let id = client
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod(round, who)),
            runtime_handler: String::new(),
        })
        .await
        .with_context(|| format!("{who}: RunPodSandbox"))?
        .into_inner()
        .pod_sandbox_id;
    let run = t.elapsed().as_micros();
    let t = Instant::now();
    client
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await?;
    client
        .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
        .await?;
    Ok((run, t.elapsed().as_micros()))
}

fn median(v: &mut [u128]) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn bench(rounds: usize) -> Result<()> {
    berth_fixtures::require_root();
    let work = tempfile::Builder::new()
        .prefix("berth-bench-cri.")
        .tempdir()?;
    let img =
        berth_fixtures::images::with_cmd(&work.path().join("img"), &["/bin/sleep", "2147483647"])?;
    let registry = berth_fixtures::Registry::start()?;
    registry.push(&img, "pause:bench")?;

    let berth_dir = work.path().join("berth");
    let ctrd_dir = work.path().join("containerd");
    std::fs::create_dir_all(&berth_dir)?;
    std::fs::create_dir_all(&ctrd_dir)?;
    let berth_sock = berth_dir.join("berth.sock");
    let _berth = Proc(
        Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg(&berth_dir)
            .arg(&berth_sock)
            .stdin(Stdio::null())
            .spawn()?,
    );
    let (_ctrd, ctrd_sock) = containerd(&ctrd_dir, &registry.host())?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut berth = connect(&berth_sock).await?;
        let mut ctrd = connect(&ctrd_sock).await?;
        // Warm-up (containerd pulls its pause image here), not measured.
        round(&mut berth, 0, "b").await?;
        round(&mut ctrd, 0, "c").await?;
        let (mut b_run, mut b_down, mut c_run, mut c_down) = (vec![], vec![], vec![], vec![]);
        for i in 1..=rounds {
            let (r, d) = round(&mut berth, i, "b").await?;
            b_run.push(r);
            b_down.push(d);
            let (r, d) = round(&mut ctrd, i, "c").await?;
            c_run.push(r);
            c_down.push(d);
        }
        let line = |what: &str, b: u128, c: u128| {
            println!(
                "{what:<28} berth {:>8.2} ms   containerd {:>8.2} ms   berth/containerd {:.3}",
                b as f64 / 1000.0,
                c as f64 / 1000.0,
                b as f64 / c as f64
            )
        };
        println!("rounds: {rounds} interleaved (after one warm-up round each), medians");
        line("RunPodSandbox", median(&mut b_run), median(&mut c_run));
        line(
            "StopPodSandbox+Remove",
            median(&mut b_down),
            median(&mut c_down),
        );
        anyhow::Ok(())
    });
    if result.is_err() {
        eprintln!(
            "containerd log: {}",
            ctrd_dir.join("containerd.log").display()
        );
        let log = std::fs::read_to_string(ctrd_dir.join("containerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    for bridge in ["bbenchb0", "bbenchc0"] {
        let _ = Command::new("ip").args(["link", "del", bridge]).output();
    }
    result
}
