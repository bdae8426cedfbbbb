//! Pod and container start and teardown: berthd vs containerd 1.6's built-in CRI plugin,
//! driven by the same Rust CRI client (k8s-cri), interleaved rounds, medians and ratios.
//! Run through `hack/bench/cri.sh` (root), which owns the work directory and cleans it
//! up whatever happens.
//!
//! Each round, on each runtime in turn: RunPodSandbox, CreateContainer (busybox from
//! the fixture image, `sleep`), StartContainer, then StopPodSandbox + RemovePodSandbox,
//! which take the container with them. Both runtimes get private root/state dirs under
//! the work directory, their own bridge and subnet on the same CNI plugins
//! (/usr/lib/cni), and a pod cgroup parent of their own. The busybox image and
//! containerd's pause image (a busybox `sleep`) are served by a docker-registry on
//! loopback and pulled by both before anything is measured.
//!
//! `cri_bench cleanup WORK` removes every pod both daemons still hold, over CRI; the
//! script's trap runs it before killing what is left.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::transport::{Channel, Endpoint, Uri};

/// One CRI call may take this long before the bench gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("bench") if args.len() == 4 => bench(
            Mode::Timing(args[2].parse().context("rounds")?),
            Path::new(&args[3]),
        ),
        Some("memory") if args.len() == 5 => bench(
            Mode::Memory {
                pods: args[2].parse().context("pods")?,
                containers: args[3].parse().context("containers per pod")?,
            },
            Path::new(&args[4]),
        ),
        Some("execsync") if args.len() == 4 => bench(
            Mode::ExecSync(args[2].parse().context("calls")?),
            Path::new(&args[3]),
        ),
        Some("cleanup") if args.len() == 3 => cleanup(Path::new(&args[2])),
        _ => bail!(
            "usage: cri_bench bench ROUNDS WORKDIR | cri_bench memory PODS CONTAINERS WORKDIR | cri_bench execsync CALLS WORKDIR | cri_bench cleanup WORKDIR"
        ),
    }
}

/// What a run measures: start/teardown timings over interleaved rounds, or the shims'
/// memory with `pods` pods of `containers` sleeping containers each on both runtimes.
#[derive(Clone, Copy)]
enum Mode {
    Timing(usize),
    Memory {
        pods: usize,
        containers: usize,
    },
    /// ExecSync latency: `calls` interleaved `true` execs in one running container each.
    ExecSync(usize),
}

/// The two runtimes under test, and where each one lives inside the work directory.
#[derive(Clone, Copy)]
enum Who {
    Berth,
    Containerd,
}

impl Who {
    fn dir(self, work: &Path) -> PathBuf {
        work.join(self.name())
    }

    fn name(self) -> &'static str {
        match self {
            Who::Berth => "berth",
            Who::Containerd => "containerd",
        }
    }

    fn socket(self, work: &Path) -> PathBuf {
        match self {
            Who::Berth => self.dir(work).join("state/berth.sock"),
            Who::Containerd => self.dir(work).join("containerd.sock"),
        }
    }

    fn bridge(self) -> &'static str {
        match self {
            Who::Berth => "bbenchb0",
            Who::Containerd => "bbenchc0",
        }
    }

    fn subnet(self) -> &'static str {
        match self {
            Who::Berth => "10.254.0.0/22",
            Who::Containerd => "10.254.4.0/22",
        }
    }

    /// The pods' cgroup parent: `/<work dir name>/<who>`, so the script's trap finds
    /// every cgroup the run made.
    fn cgroup_parent(self, work: &Path) -> String {
        let base = work
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "berth-bench-cri".into());
        format!("/{base}/{}", self.name())
    }
}

fn conflist(who: Who, work: &Path) -> Result<PathBuf> {
    let dir = who.dir(work);
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir)?;
    let conf = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": format!("{}-net", who.bridge()),
        "plugins": [
            {"type": "bridge", "bridge": who.bridge(), "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": who.subnet()}]],
                      "dataDir": dir.join("ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    std::fs::write(
        conf_dir.join("10-bench.conflist"),
        serde_json::to_vec_pretty(&conf)?,
    )?;
    Ok(conf_dir)
}

/// A daemon this bench started; SIGTERM, then SIGKILL after 10 s, on drop.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Result<Proc> {
        // A process group of its own: a Ctrl-C on the bench leaves the daemon up, so
        // the script's trap can still remove the pods through it.
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc { name, child })
    }

    fn check_alive(&mut self, log: &Path) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited with {status}; its log: {}\n{}",
                self.name,
                log.display(),
                tail(log)
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} ignored SIGTERM for 10 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// berthd (release build, next to this example's directory) with berth-shim beside it.
fn berthd(work: &Path, registry: &str) -> Result<Proc> {
    let dir = Who::Berth.dir(work);
    let conf_dir = conflist(Who::Berth, work)?;
    let config = format!(
        "[cni]\nconf_dir = {:?}\nbin_dirs = [\"/usr/lib/cni\"]\n\n[registries.\"{registry}\"]\ninsecure = true\n",
        conf_dir.display().to_string(),
    );
    std::fs::write(dir.join("config.toml"), config)?;
    let bin = berth_e2e::binary("berthd")?;
    Proc::spawn(
        "berthd",
        Command::new(bin)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .arg("--cri-socket")
            .arg(Who::Berth.socket(work))
            .arg("--log-level")
            .arg("info")
            .stderr(std::fs::File::create(dir.join("berthd.log"))?),
    )
}

fn containerd(work: &Path, registry: &str) -> Result<Proc> {
    let dir = Who::Containerd.dir(work);
    let conf_dir = conflist(Who::Containerd, work)?;
    let socket = Who::Containerd.socket(work);
    let config = format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host may not grant.
  restrict_oom_score_adj = true
  # Pod network namespaces under the private state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
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
    Proc::spawn(
        "containerd",
        Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stderr(std::fs::File::create(dir.join("containerd.log"))?),
    )
}

fn log_of(who: Who, work: &Path) -> PathBuf {
    match who {
        Who::Berth => who.dir(work).join("berthd.log"),
        Who::Containerd => who.dir(work).join("containerd.log"),
    }
}

async fn channel(socket: &Path) -> Result<Channel> {
    let path = socket.to_path_buf();
    Ok(Endpoint::try_from("http://localhost")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await?)
}

/// A channel on `socket` once the runtime answers Version, within `wait`.
async fn connect(socket: &Path, wait: Duration) -> Result<Channel> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(ch) = channel(socket).await {
            let mut client = RuntimeServiceClient::new(ch.clone());
            if client.version(cri::VersionRequest::default()).await.is_ok() {
                return Ok(ch);
            }
        }
        if Instant::now() > deadline {
            bail!("{} did not answer within {wait:?}", socket.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits one CRI call with a deadline, naming the runtime and the step on failure.
async fn call<T>(
    who: Who,
    step: &str,
    f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => bail!(
            "{}: {step}: {} {}",
            who.name(),
            status.code(),
            status.message()
        ),
        Err(_) => bail!("{}: {step}: no answer within {CALL_TIMEOUT:?}", who.name()),
    }
}

fn pod(work: &Path, who: Who, round: usize) -> cri::PodSandboxConfig {
    let name = format!("bench-{}-{round}", who.name());
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            namespace: "bench".into(),
            uid: format!("uid-{}-{round}", who.name()),
            attempt: 0,
        }),
        hostname: name,
        log_directory: who
            .dir(work)
            .join(format!("logs/{round}"))
            .display()
            .to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: who.cgroup_parent(work),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(image: &str, name: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sleep".into(), "3600".into()],
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// One round's timings, in microseconds.
#[derive(Default)]
struct Round {
    run_pod: u128,
    create: u128,
    start: u128,
    stop: u128,
    remove: u128,
}

async fn round(ch: &Channel, work: &Path, who: Who, image: &str, n: usize) -> Result<Round> {
    let mut rt = RuntimeServiceClient::new(ch.clone());
    let config = pod(work, who, n);
    let mut out = Round::default();

    let t = Instant::now();
    let sandbox = call(
        who,
        "RunPodSandbox",
        rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }),
    )
    .await?
    .pod_sandbox_id;
    out.run_pod = t.elapsed().as_micros();

    let t = Instant::now();
    let created = call(
        who,
        "CreateContainer",
        rt.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(container(image, "sleeper")),
            sandbox_config: Some(config),
        }),
    )
    .await;
    out.create = t.elapsed().as_micros();

    let started = match created {
        Ok(resp) => {
            let t = Instant::now();
            let r = call(
                who,
                "StartContainer",
                rt.start_container(cri::StartContainerRequest {
                    container_id: resp.container_id.clone(),
                }),
            )
            .await;
            out.start = t.elapsed().as_micros();
            match r {
                // The warm-up round checks that the container really runs.
                Ok(_) if n == 0 => running(&mut rt, who, &resp.container_id).await,
                other => other.map(|_| ()),
            }
        }
        Err(e) => Err(e),
    };

    // Teardown runs even when a step failed, so a failed round leaves nothing behind.
    let t = Instant::now();
    let stopped = call(
        who,
        "StopPodSandbox",
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        }),
    )
    .await;
    out.stop = t.elapsed().as_micros();
    let t = Instant::now();
    let removed = call(
        who,
        "RemovePodSandbox",
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        }),
    )
    .await;
    out.remove = t.elapsed().as_micros();
    started?;
    stopped?;
    removed?;
    Ok(out)
}

async fn running(
    rt: &mut RuntimeServiceClient<Channel>,
    who: Who,
    container_id: &str,
) -> Result<()> {
    let status = call(
        who,
        "ContainerStatus",
        rt.container_status(cri::ContainerStatusRequest {
            container_id: container_id.into(),
            verbose: false,
        }),
    )
    .await?
    .status
    .context("ContainerStatus without a status")?;
    if status.state != cri::ContainerState::ContainerRunning as i32 {
        bail!(
            "{}: container {container_id} is not running after StartContainer: {status:?}",
            who.name()
        );
    }
    Ok(())
}

async fn pull(ch: &Channel, who: Who, image: &str) -> Result<()> {
    let mut images = ImageServiceClient::new(ch.clone());
    call(
        who,
        &format!("PullImage {image}"),
        images.pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .await?;
    Ok(())
}

fn median(v: &[u128]) -> u128 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

fn bench(mode: Mode, work: &Path) -> Result<()> {
    berth_fixtures::require_root();
    match mode {
        Mode::Timing(0) | Mode::ExecSync(0) => bail!("rounds must be at least 1"),
        Mode::Memory { pods, containers } if pods == 0 || containers == 0 => {
            bail!("pods and containers must be at least 1")
        }
        _ => {}
    }
    let img_dir = work.join("img");
    let busybox = berth_fixtures::images::base(&img_dir.join("busybox"))?;
    let pause =
        berth_fixtures::images::with_cmd(&img_dir.join("pause"), &["/bin/sleep", "2147483647"])?;
    let registry = berth_fixtures::Registry::start()?;
    let image = registry.push(&busybox, "bench/busybox:v1")?;
    registry.push(&pause, "pause:bench")?;

    for who in [Who::Berth, Who::Containerd] {
        std::fs::create_dir_all(who.dir(work))?;
    }
    let mut berthd = berthd(work, &registry.host())?;
    let mut ctrd = containerd(work, &registry.host())?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let b = connect(&Who::Berth.socket(work), Duration::from_secs(30)).await;
        berthd.check_alive(&log_of(Who::Berth, work))?;
        let c = connect(&Who::Containerd.socket(work), Duration::from_secs(30)).await;
        ctrd.check_alive(&log_of(Who::Containerd, work))?;
        let (b, c) = (b?, c?);
        // Images first, then one warm-up round each; none of it is measured.
        pull(&b, Who::Berth, &image).await?;
        pull(&c, Who::Containerd, &image).await?;
        pull(
            &c,
            Who::Containerd,
            &format!("{}/pause:bench", registry.host()),
        )
        .await?;
        let rounds = match mode {
            Mode::Timing(rounds) => rounds,
            Mode::Memory { pods, containers } => {
                return memory(&b, &c, work, &image, pods, containers).await;
            }
            Mode::ExecSync(calls) => return exec_sync(&b, &c, work, &image, calls).await,
        };
        round(&b, work, Who::Berth, &image, 0).await?;
        round(&c, work, Who::Containerd, &image, 0).await?;

        let (mut bs, mut cs) = (Vec::new(), Vec::new());
        for i in 1..=rounds {
            bs.push(round(&b, work, Who::Berth, &image, i).await?);
            cs.push(round(&c, work, Who::Containerd, &image, i).await?);
        }
        report(rounds, &bs, &cs);
        anyhow::Ok(())
    });
    // Whatever happened, remove the pods while the daemons are still up.
    if let Err(e) = rt.block_on(remove_all_pods(work, Duration::from_secs(5))) {
        eprintln!("cleanup: {e:#}");
    }
    if let Err(e) = &result {
        eprintln!("bench failed: {e:#}");
        for who in [Who::Berth, Who::Containerd] {
            let log = log_of(who, work);
            eprintln!("--- {} (last lines)\n{}", log.display(), tail(&log));
        }
    }
    drop(berthd);
    drop(ctrd);
    result
}

/// A pod with one sleeping container; its id, once it runs.
async fn sleeper(ch: &Channel, work: &Path, who: Who, image: &str, n: usize) -> Result<String> {
    let mut rt = RuntimeServiceClient::new(ch.clone());
    let config = pod(work, who, n);
    let sandbox = call(
        who,
        "RunPodSandbox",
        rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }),
    )
    .await?
    .pod_sandbox_id;
    let id = call(
        who,
        "CreateContainer",
        rt.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox,
            config: Some(container(image, "sleeper")),
            sandbox_config: Some(config),
        }),
    )
    .await?
    .container_id;
    call(
        who,
        "StartContainer",
        rt.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        }),
    )
    .await?;
    running(&mut rt, who, &id).await?;
    Ok(id)
}

/// One ExecSync of `true`, timed in microseconds; a non-zero exit is a failure.
async fn exec_true(rt: &mut RuntimeServiceClient<Channel>, who: Who, id: &str) -> Result<u128> {
    let t = Instant::now();
    let resp = call(
        who,
        "ExecSync",
        rt.exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            timeout: 10,
        }),
    )
    .await?;
    let took = t.elapsed().as_micros();
    if resp.exit_code != 0 {
        bail!("{}: ExecSync true exited {}", who.name(), resp.exit_code);
    }
    Ok(took)
}

fn percentile(v: &[u128], p: f64) -> u128 {
    let mut v = v.to_vec();
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// ExecSync latency as kubelet's exec probes see it: `calls` interleaved calls of
/// `true` in one running container per runtime (after 3 warm-up calls each); medians,
/// p99 and the ratio. The pods stay for the caller's cleanup.
async fn exec_sync(b: &Channel, c: &Channel, work: &Path, image: &str, calls: usize) -> Result<()> {
    let bid = sleeper(b, work, Who::Berth, image, 0).await?;
    let cid = sleeper(c, work, Who::Containerd, image, 0).await?;
    let mut brt = RuntimeServiceClient::new(b.clone());
    let mut crt = RuntimeServiceClient::new(c.clone());
    for _ in 0..3 {
        exec_true(&mut brt, Who::Berth, &bid).await?;
        exec_true(&mut crt, Who::Containerd, &cid).await?;
    }
    let (mut bs, mut cs) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        bs.push(exec_true(&mut brt, Who::Berth, &bid).await?);
        cs.push(exec_true(&mut crt, Who::Containerd, &cid).await?);
    }
    let ms = |us: u128| us as f64 / 1000.0;
    let (bm, cm) = (median(&bs), median(&cs));
    let (bp, cp) = (percentile(&bs, 0.99), percentile(&cs, 0.99));
    println!("ExecSync `true`: {calls} interleaved calls each (after 3 warm-up calls)");
    println!(
        "{:<34} berth {:>8.2} ms   containerd {:>8.2} ms   berth/containerd {:.3}",
        "ExecSync median",
        ms(bm),
        ms(cm),
        bm as f64 / cm as f64
    );
    println!(
        "{:<34} berth {:>8.2} ms   containerd {:>8.2} ms   berth/containerd {:.3}",
        "ExecSync p99",
        ms(bp),
        ms(cp),
        bp as f64 / cp as f64
    );
    let ratio = bm as f64 / cm as f64;
    println!(
        "goal: berth's ExecSync median <= 1/3 of containerd's: {} ({ratio:.3})",
        if ratio <= 1.0 / 3.0 { "met" } else { "NOT met" },
    );
    Ok(())
}

/// `pods` pods of `containers` sleeping containers on each runtime, then the PSS of
/// each runtime's shims (both run one shim per pod) and their threads. The pods stay
/// for the caller's cleanup.
async fn memory(
    b: &Channel,
    c: &Channel,
    work: &Path,
    image: &str,
    pods: usize,
    containers: usize,
) -> Result<()> {
    for (who, ch) in [(Who::Berth, b), (Who::Containerd, c)] {
        let mut rt = RuntimeServiceClient::new(ch.clone());
        for p in 0..pods {
            let config = pod(work, who, 1000 + p);
            let sandbox = call(
                who,
                "RunPodSandbox",
                rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                }),
            )
            .await?
            .pod_sandbox_id;
            for k in 0..containers {
                let id = call(
                    who,
                    "CreateContainer",
                    rt.create_container(cri::CreateContainerRequest {
                        pod_sandbox_id: sandbox.clone(),
                        config: Some(container(image, &format!("sleeper-{k}"))),
                        sandbox_config: Some(config.clone()),
                    }),
                )
                .await?
                .container_id;
                call(
                    who,
                    "StartContainer",
                    rt.start_container(cri::StartContainerRequest { container_id: id }),
                )
                .await?;
            }
        }
    }
    // Let the shims finish starting up before their memory is read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "shim memory: {pods} pods x {containers} sleeping containers on each runtime; PSS from /proc/PID/smaps_rollup"
    );
    println!(
        "{:<26} {:>9} {:>8} {:>12} {:>12} {:>15}",
        "shim", "processes", "threads", "PSS total", "PSS/pod", "PSS/container"
    );
    let mut per_pod = Vec::new();
    for exe in ["berth-shim", "containerd-shim-runc-v2"] {
        let shims = shims(exe, work)?;
        let total: u64 = shims.iter().map(|s| s.pss_kib).sum();
        let threads: usize = shims.iter().map(|s| s.threads).sum();
        println!(
            "{exe:<26} {:>9} {:>8} {:>8.2} MiB {:>8.3} MiB {:>11.3} MiB",
            shims.len(),
            threads,
            mib(total),
            mib(total) / pods as f64,
            mib(total) / (pods * containers) as f64
        );
        per_pod.push(mib(total) / pods as f64);
    }
    let ratio = per_pod[0] / per_pod[1];
    println!(
        "ratio berth/containerd per pod: {ratio:.3} (goal <= 0.25: {})",
        if ratio <= 0.25 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// A shim process: its PSS (KiB) and thread count.
struct ShimProc {
    pss_kib: u64,
    threads: usize,
}

/// Every process running `exe` whose command line names the work directory (the shims
/// pass their daemon's socket path under it).
fn shims(exe: &str, work: &Path) -> Result<Vec<ShimProc>> {
    let work = work.display().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let dir = entry?.path();
        let is_exe = std::fs::read_link(dir.join("exe"))
            .is_ok_and(|p| p.file_name().is_some_and(|n| n == exe));
        let ours = std::fs::read(dir.join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&work));
        if !(is_exe && ours) {
            continue;
        }
        let Ok(rollup) = std::fs::read_to_string(dir.join("smaps_rollup")) else {
            continue;
        };
        let pss_kib = rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no Pss in {}/smaps_rollup", dir.display()))?;
        let threads = std::fs::read_dir(dir.join("task"))
            .map(|d| d.count())
            .unwrap_or(0);
        out.push(ShimProc { pss_kib, threads });
    }
    Ok(out)
}

fn report(rounds: usize, bs: &[Round], cs: &[Round]) {
    let ms = |us: u128| us as f64 / 1000.0;
    let line = |what: &str, f: &dyn Fn(&Round) -> u128| {
        let b = median(&bs.iter().map(f).collect::<Vec<_>>());
        let c = median(&cs.iter().map(f).collect::<Vec<_>>());
        println!(
            "{what:<34} berth {:>8.2} ms   containerd {:>8.2} ms   berth/containerd {:.3}",
            ms(b),
            ms(c),
            b as f64 / c as f64
        );
        b as f64 / c as f64
    };
    println!("rounds: {rounds} interleaved (after one warm-up round each), medians");
    line("RunPodSandbox", &|r| r.run_pod);
    line("CreateContainer", &|r| r.create);
    line("StartContainer", &|r| r.start);
    let total = line("pod+container start (sum/round)", &|r| {
        r.run_pod + r.create + r.start
    });
    line("StopPodSandbox (incl. container)", &|r| r.stop);
    line("RemovePodSandbox (incl. container)", &|r| r.remove);
    line("StopPodSandbox+RemovePodSandbox", &|r| r.stop + r.remove);
    println!(
        "goal: berth's pod+container start <= 1/3 of containerd's: {} ({:.3})",
        if total <= 1.0 / 3.0 { "met" } else { "NOT met" },
        total
    );
}

/// Stops and removes every pod each daemon still holds (their containers go with them).
async fn remove_all_pods(work: &Path, wait: Duration) -> Result<()> {
    let mut errors = Vec::new();
    for who in [Who::Berth, Who::Containerd] {
        let socket = who.socket(work);
        // A daemon that is gone (socket missing or refusing) holds nothing to remove.
        if std::os::unix::net::UnixStream::connect(&socket).is_err() {
            continue;
        }
        let ch = match connect(&socket, wait).await {
            Ok(ch) => ch,
            Err(e) => {
                errors.push(format!("{e:#}"));
                continue;
            }
        };
        let mut rt = RuntimeServiceClient::new(ch);
        let pods = match call(
            who,
            "ListPodSandbox",
            rt.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }),
        )
        .await
        {
            Ok(resp) => resp.items,
            Err(e) => {
                errors.push(format!("{e:#}"));
                continue;
            }
        };
        for pod in pods {
            if let Err(e) = call(
                who,
                "StopPodSandbox",
                rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: pod.id.clone(),
                }),
            )
            .await
            {
                errors.push(format!("{e:#}"));
            }
            if let Err(e) = call(
                who,
                "RemovePodSandbox",
                rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: pod.id.clone(),
                }),
            )
            .await
            {
                errors.push(format!("{e:#}"));
            } else {
                eprintln!("cleanup: removed {} pod {}", who.name(), pod.id);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("\n"))
    }
}

fn cleanup(work: &Path) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(remove_all_pods(work, Duration::from_secs(2)))
}
