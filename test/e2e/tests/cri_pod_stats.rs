//! Issue 8's pod stats and metrics with real traffic and real work: two pods on a
//! bridge the test creates, pinged from the host over it, so the pod's interface
//! counters must move; a pod sharing one PID namespace whose process count is checked
//! against what runs in it; a CPU-bound container under a CFS quota whose CPU seconds
//! and throttling are checked against its cgroup.

mod cri_common;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use berth_e2e::{require_root, Berthd};
use k8s_cri::v1 as cri;

use cri_common::{cgroup_dirs, cgroup_file, container, mounts_under, Client, PodGuard};

const BRIDGE: &str = "bstats0";
const SUBNET: &str = "10.254.41.0/24";
const NETWORK: &str = "berth-stats-net";

struct BridgeGuard;

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    }
}

/// The pods' cgroup parent is kubelet's to remove; the test made it, the test removes it.
struct CgroupGuard(String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for dir in cgroup_dirs(&self.0) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// (rx bytes, tx bytes) of `iface` in `/proc/net/dev` text.
fn dev_counters(text: &str, iface: &str) -> Option<(u64, u64)> {
    text.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        if name.trim() != iface {
            return None;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        Some((*f.first()?, *f.get(8)?))
    })
}

fn pod_stats(client: &Client, id: &str) -> Result<cri::PodSandboxStats> {
    let mut rt = client.runtime()?;
    client
        .block_on(rt.pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: id.into(),
        }))?
        .into_inner()
        .stats
        .context("PodSandboxStats without stats")
}

/// (rx bytes, tx bytes) of the pod's default interface as PodSandboxStats reports it.
fn reported_eth0(stats: &cri::PodSandboxStats) -> Result<(u64, u64)> {
    let eth0 = stats
        .linux
        .as_ref()
        .and_then(|l| l.network.as_ref())
        .and_then(|n| n.default_interface.as_ref())
        .context("no default interface in the pod's stats")?;
    ensure!(eth0.name == "eth0", "default interface {eth0:?}");
    let v = |x: &Option<cri::UInt64Value>| x.as_ref().map(|v| v.value).unwrap_or(0);
    ensure!(
        eth0.rx_errors.is_some() && eth0.tx_errors.is_some(),
        "{eth0:?}"
    );
    Ok((v(&eth0.rx_bytes), v(&eth0.tx_bytes)))
}

fn process_count(stats: &cri::PodSandboxStats) -> Option<u64> {
    stats
        .linux
        .as_ref()?
        .process
        .as_ref()?
        .process_count
        .as_ref()
        .map(|v| v.value)
}

fn pod_metrics(client: &Client) -> Result<Vec<cri::PodSandboxMetrics>> {
    let mut rt = client.runtime()?;
    Ok(client
        .block_on(rt.list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}))?
        .into_inner()
        .pod_metrics)
}

fn metric_value(metrics: &[cri::Metric], name: &str, labels: &[&str]) -> Result<u64> {
    let m = metrics
        .iter()
        .find(|m| m.name == name && m.label_values == labels)
        .with_context(|| format!("no {name} {labels:?} in {metrics:#?}"))?;
    Ok(m.value.as_ref().map(|v| v.value).unwrap_or(0))
}

#[test]
fn cri_pod_stats_and_metrics_with_traffic_processes_and_cpu() -> Result<()> {
    require_root();
    let _bridge = BridgeGuard;
    let work = tempfile::tempdir()?;
    let img_dir = tempfile::tempdir()?;
    let img = berth_fixtures::images::base(img_dir.path())?;
    let registry = berth_fixtures::Registry::start()?;
    let image = registry.push(&img, "cristats/busybox:v1")?;
    let conf_dir = work.path().join("net.d");
    std::fs::create_dir_all(&conf_dir)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                      "dataDir": work.path().join("ipam")}}
        ]
    });
    std::fs::write(
        conf_dir.join("10-stats.conflist"),
        serde_json::to_vec_pretty(&conf)?,
    )?;
    let config = format!(
        "[cni]\nconf_dir = {:?}\nbin_dirs = [\"/usr/lib/cni\", \"/opt/cni/bin\"]\n\n\
         [registries.\"{}\"]\ninsecure = true\n",
        conf_dir.display().to_string(),
        registry.host()
    );
    let berthd = Berthd::start_with_config(&config)?;
    let client = Client::new(&berthd.cri_socket())?;
    let mut rt = client.runtime()?;
    client.block_on(client.images()?.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }))?;

    let cgroup_parent = format!("cristats-{}", std::process::id());
    let _cgroup_guard = CgroupGuard(cgroup_parent.clone());
    let pod_config = |name: &str, pid: cri::NamespaceMode, parent: &str| cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        log_directory: work.path().join(name).display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: parent.into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: pid as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let run = |pod: &cri::PodSandboxConfig| -> Result<String> {
        let mut rt = client.runtime()?;
        Ok(client
            .block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(pod.clone()),
                runtime_handler: String::new(),
            }))?
            .into_inner()
            .pod_sandbox_id)
    };
    // Pod A: one PID namespace for the pod (berth's pod init is its PID 1), its own
    // cgroup parent. Pod B: a PID namespace per container, no cgroup parent.
    let pod_a = pod_config("cristats-a", cri::NamespaceMode::Pod, &cgroup_parent);
    let a = run(&pod_a)?;
    let _a_guard = PodGuard {
        socket: berthd.cri_socket(),
        id: a.clone(),
    };
    let pod_b = pod_config("cristats-b", cri::NamespaceMode::Container, "");
    let b = run(&pod_b)?;
    let _b_guard = PodGuard {
        socket: berthd.cri_socket(),
        id: b.clone(),
    };
    let in_pod_a = |name: &str, script: &str| {
        let mut c = container(name, &image, script, &format!("{name}.log"));
        c.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    };
    let one = client.create_and_start(&a, &pod_a, in_pod_a("one", "exec sleep 3600"))?;
    let three = client.create_and_start(
        &a,
        &pod_a,
        in_pod_a("three", "sleep 3600 & sleep 3600 & wait"),
    )?;
    client.wait_state(&one, cri::ContainerState::ContainerRunning)?;
    client.wait_state(&three, cri::ContainerState::ContainerRunning)?;

    // Processes: sleep, sh with two sleeps, and the pod init: 5, once "three" has
    // started both of its sleeps.
    let deadline = Instant::now() + Duration::from_secs(10);
    let count = loop {
        let n = process_count(&pod_stats(&client, &a)?);
        if n == Some(5) || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let procs_in_cgroup = cgroup_dirs(&cgroup_parent)
        .first()
        .map(|d| walk_count(d).unwrap_or(0))
        .unwrap_or(0);
    assert_eq!(
        count,
        Some(5),
        "pod process count; {procs_in_cgroup} processes in its cgroup parent"
    );
    // Pod B: nothing runs yet, and it has no pod init.
    assert_eq!(process_count(&pod_stats(&client, &b)?), Some(0));

    // Traffic over the test's bridge: the host pings pod A's address.
    let status = client
        .block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: a.clone(),
            verbose: false,
        }))?
        .into_inner()
        .status
        .context("no pod status")?;
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    ensure!(ip.starts_with("10.254.41."), "pod A's address {ip:?}");
    let inside = |id: &str| -> Result<(u64, u64)> {
        let r = client.exec(id, &["cat", "/proc/net/dev"], 10)?;
        ensure!(r.exit_code == 0, "{}", String::from_utf8_lossy(&r.stderr));
        dev_counters(&String::from_utf8_lossy(&r.stdout), "eth0").context("no eth0 inside")
    };
    let before = reported_eth0(&pod_stats(&client, &a)?)?;
    let (count, size) = (5u64, 1000u64);
    let ping = Command::new("busybox")
        .args([
            "ping",
            "-c",
            &count.to_string(),
            "-s",
            &size.to_string(),
            "-W",
            "2",
        ])
        .arg(&ip)
        .output()?;
    ensure!(
        ping.status.success(),
        "ping {ip}: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    // What the container sees of its own interface brackets what the pod stats say.
    let inside_before = inside(&one)?;
    let after_stats = pod_stats(&client, &a)?;
    let after = reported_eth0(&after_stats)?;
    let inside_after = inside(&one)?;
    // Each echo request in and each reply out: payload, ICMP and IP headers at least.
    let per_packet = size + 8 + 20;
    assert!(
        after.0 - before.0 >= count * per_packet,
        "rx {before:?} -> {after:?}"
    );
    assert!(
        after.1 - before.1 >= count * per_packet,
        "tx {before:?} -> {after:?}"
    );
    assert!(
        inside_before.0 <= after.0 && after.0 <= inside_after.0,
        "rx: inside {inside_before:?}..{inside_after:?}, reported {after:?}"
    );
    assert!(
        inside_before.1 <= after.1 && after.1 <= inside_after.1,
        "tx: inside {inside_before:?}..{inside_after:?}, reported {after:?}"
    );
    let interfaces = &after_stats
        .linux
        .as_ref()
        .and_then(|l| l.network.as_ref())
        .context("no network")?
        .interfaces;
    assert!(
        interfaces
            .iter()
            .all(|i| i.name != "lo" && i.name != "eth0"),
        "{interfaces:?}"
    );

    // A CPU-bound container in pod B under half a CPU: its CPU seconds and its
    // throttling, from its cgroup.
    let mut burner = container("burner", &image, "while :; do :; done", "burner.log");
    burner.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            ..Default::default()
        }),
        ..Default::default()
    });
    let burner = client.create_and_start(&b, &pod_b, burner)?;
    client.wait_state(&burner, cri::ContainerState::ContainerRunning)?;
    let cgroups_path = |id: &str| -> Result<String> {
        // The container's cgroup: under its pod's parent, else wherever the runtime put it.
        let found = cgroup_dirs("")
            .into_iter()
            .filter(|d| d.ends_with("cpuacct") || d.join("cgroup.controllers").exists())
            .find_map(|root| find_dir(&root, id).map(|p| (root, p)));
        let (root, dir) = found.with_context(|| format!("no cgroup named {id}"))?;
        Ok(dir.strip_prefix(&root)?.display().to_string())
    };
    let rel = cgroups_path(&burner)?;
    let cpu_ns = || -> Result<u64> {
        let v = cgroup_file("cpuacct", &rel, "cpuacct.usage", "cpu.stat")?;
        Ok(match v.parse::<u64>() {
            Ok(ns) => ns,
            Err(_) => {
                v.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .context("no usage_usec")?
                    .trim()
                    .parse::<u64>()?
                    * 1000
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while cpu_ns()? < 1_500_000_000 {
        if Instant::now() > deadline {
            bail!("the burner used only {} ns of CPU in 30 s", cpu_ns()?);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ns_before = cpu_ns()?;
    let metrics = pod_metrics(&client)?;
    let ns_after = cpu_ns()?;
    client.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: burner.clone(),
        timeout: 0,
    }))?;
    let pm_b = metrics
        .iter()
        .find(|p| p.pod_sandbox_id == b)
        .context("no metrics for pod B")?;
    let burner_metrics = &pm_b
        .container_metrics
        .iter()
        .find(|c| c.container_id == burner)
        .context("no metrics for the burner")?
        .metrics;
    let labels = [burner.as_str(), "burner", image.as_str()];
    let seconds = metric_value(burner_metrics, "container_cpu_usage_seconds_total", &labels)?;
    assert!(
        ns_before / 1_000_000_000 <= seconds && seconds <= ns_after / 1_000_000_000 && seconds >= 1,
        "cpu seconds {seconds}, cgroup {ns_before}..{ns_after} ns"
    );
    let user = metric_value(burner_metrics, "container_cpu_user_seconds_total", &labels)?;
    let system = metric_value(
        burner_metrics,
        "container_cpu_system_seconds_total",
        &labels,
    )?;
    assert!(
        user + system <= seconds + 1,
        "user {user} + system {system} > {seconds}"
    );
    let periods = metric_value(burner_metrics, "container_cpu_cfs_periods_total", &labels)?;
    let throttled = metric_value(
        burner_metrics,
        "container_cpu_cfs_throttled_periods_total",
        &labels,
    )?;
    assert!(
        periods >= 10 && throttled >= 5 && throttled <= periods,
        "{throttled} of {periods} periods throttled"
    );
    assert_eq!(
        metric_value(burner_metrics, "container_processes", &labels)?,
        1
    );

    // Pod A's metrics: the network counters of its interface under the pod's labels,
    // at least what the stats said before; each container's processes.
    let pm_a = metrics
        .iter()
        .find(|p| p.pod_sandbox_id == a)
        .context("no metrics for pod A")?;
    let pod_labels = [a.as_str(), "POD", "", "eth0"];
    let rx = metric_value(
        &pm_a.metrics,
        "container_network_receive_bytes_total",
        &pod_labels,
    )?;
    let tx = metric_value(
        &pm_a.metrics,
        "container_network_transmit_bytes_total",
        &pod_labels,
    )?;
    assert!(
        rx >= after.0 && tx >= after.1,
        "metrics {rx}/{tx}, stats {after:?}"
    );
    assert!(
        !pm_a
            .metrics
            .iter()
            .any(|m| m.label_values.get(3).map(String::as_str) == Some("lo")),
        "loopback reported"
    );
    let three_metrics = &pm_a
        .container_metrics
        .iter()
        .find(|c| c.container_id == three)
        .context("no metrics for three")?
        .metrics;
    let three_labels = [three.as_str(), "three", image.as_str()];
    assert_eq!(
        metric_value(three_metrics, "container_processes", &three_labels)?,
        3
    );
    let threads = metric_value(three_metrics, "container_threads", &three_labels)?;
    assert!(threads >= 3, "{threads} threads");

    for id in [&a, &b] {
        client.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        }))?;
    }
    // Stopped pods are not scraped; their stats still answer, without a network.
    assert!(pod_metrics(&client)?.is_empty());
    let stopped = pod_stats(&client, &a)?;
    assert!(
        stopped.linux.as_ref().is_some_and(|l| l.network.is_none()),
        "{stopped:?}"
    );
    let listed = client
        .block_on(rt.list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None }))?
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for id in [&a, &b] {
        client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        }))?;
    }
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    Ok(())
}

/// Processes in a cgroup directory and below.
fn walk_count(dir: &std::path::Path) -> Result<usize> {
    let mut n = std::fs::read_to_string(dir.join("cgroup.procs"))?
        .lines()
        .count();
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.path().is_dir() {
            n += walk_count(&e.path())?;
        }
    }
    Ok(n)
}

/// The directory named `name` somewhere below `dir`.
fn find_dir(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if e.file_name() == name {
            return Some(p);
        }
        if let Some(found) = find_dir(&p, name) {
            return Some(found);
        }
    }
    None
}
