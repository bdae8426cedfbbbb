//! Issue 8's events and pod stats: GetContainerEvents streams the engine's lifecycle
//! changes of CRI containers (created, started, stopped, on request or on their own,
//! deleted, also when the pod goes), each with its pod's status and the pod's
//! container statuses; a subscriber that falls behind the engine's backlog gets its
//! stream ended with DATA_LOSS instead of silently missing changes; PodSandboxStats and
//! ListPodSandboxStats report the pod's cgroup, processes and containers; the metrics
//! RPCs describe and report cAdvisor-named metrics from the containers' cgroups;
//! CheckpointContainer says plainly that berth does not checkpoint.

mod cri_common;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_e2e::require_root;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::ContainerEventType as Ev;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use cri_common::{cgroup_dirs, cgroup_file, container, mounts_under, setup_base, Client};

/// The pod's cgroup parent is kubelet's to remove; the test made it, the test removes
/// it, whether it passes or fails.
struct CgroupGuard(String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for dir in cgroup_dirs(&self.0) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Reads events from the stream until `want` (container id, kind) has been seen in
/// order for each container named in it; returns every event read.
fn expect_events(
    client: &Client,
    stream: &mut tonic::Streaming<cri::ContainerEventResponse>,
    want: &[(&str, Ev)],
) -> Result<Vec<cri::ContainerEventResponse>> {
    let mut seen: Vec<cri::ContainerEventResponse> = Vec::new();
    let done = |seen: &[cri::ContainerEventResponse]| {
        let ids: std::collections::BTreeSet<&str> = want.iter().map(|w| w.0).collect();
        ids.into_iter().all(|id| {
            let got: Vec<i32> = seen
                .iter()
                .filter(|e| e.container_id == id)
                .map(|e| e.container_event_type)
                .collect();
            let wanted: Vec<i32> = want
                .iter()
                .filter(|w| w.0 == id)
                .map(|w| w.1 as i32)
                .collect();
            got == wanted
        })
    };
    while !done(&seen) {
        let next = client.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), stream.message()).await
        });
        match next {
            Ok(Ok(Some(e))) => seen.push(e),
            Ok(Ok(None)) => bail!("the event stream ended; events so far: {seen:#?}"),
            Ok(Err(status)) => bail!("the event stream failed: {status}"),
            Err(_) => bail!("waited 20 s for {want:?}; events so far: {seen:#?}"),
        }
    }
    Ok(seen)
}

#[test]
fn cri_container_events_and_pod_stats() -> Result<()> {
    require_root();
    let s = setup_base("crievents/busybox", "")?;
    let (berthd, client, image) = (&s.berthd, &s.client, s.base());
    let work = s.work.as_path();
    let mut rt = client.runtime()?;

    // Subscribed before anything happens, on its own connection.
    let mut events = client
        .block_on(
            client
                .runtime()?
                .get_container_events(cri::GetEventsRequest {}),
        )?
        .into_inner();

    let cgroup_parent = format!("crievents-{}", std::process::id());
    // Declared before the pod's guard, so it drops after the pod is gone.
    let _cgroup_guard = CgroupGuard(cgroup_parent.clone());
    let pod = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "crievents".into(),
            namespace: "default".into(),
            uid: "uid-crievents".into(),
            attempt: 0,
        }),
        labels: [("app".to_string(), "events".to_string())].into(),
        log_directory: work.join("logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone(),
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
    };
    let (sandbox, _pod_guard) = s.start_pod(&pod)?;

    // A long-running container: created, then started.
    let sleeper = client.create_and_start(
        &sandbox,
        &pod,
        container("sleeper", &image, "exec sleep 3600", "sleeper.log"),
    )?;
    let seen = expect_events(
        client,
        &mut events,
        &[
            (&sleeper, Ev::ContainerCreatedEvent),
            (&sleeper, Ev::ContainerStartedEvent),
        ],
    )?;
    let started = seen
        .iter()
        .find(|e| e.container_event_type == Ev::ContainerStartedEvent as i32)
        .context("no started event")?;
    let pod_status = started
        .pod_sandbox_status
        .as_ref()
        .context("event without the pod's status")?;
    assert_eq!(pod_status.id, sandbox);
    assert_eq!(pod_status.state, cri::PodSandboxState::SandboxReady as i32);
    assert!(started.created_at > 0, "{started:?}");
    let own = started
        .containers_statuses
        .iter()
        .find(|s| s.id == sleeper)
        .context("the event lacks the container's status")?;
    assert_eq!(own.state, cri::ContainerState::ContainerRunning as i32);

    // Pod stats: the pod's cgroup (its cgroup parent) and its container.
    std::thread::sleep(Duration::from_millis(300));
    let stats = client
        .block_on(rt.pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: sandbox.clone(),
        }))?
        .into_inner()
        .stats
        .context("PodSandboxStats without stats")?;
    let attrs = stats.attributes.as_ref().context("no attributes")?;
    assert_eq!(attrs.id, sandbox);
    assert_eq!(attrs.labels.get("app").map(String::as_str), Some("events"));
    let linux = stats.linux.as_ref().context("no linux stats")?;
    let cpu = linux
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .context("no pod cpu usage")?;
    assert!(cpu.value > 0, "pod cpu {cpu:?}");
    let memory = linux
        .memory
        .as_ref()
        .and_then(|m| m.usage_bytes.as_ref())
        .context("no pod memory usage")?;
    assert!(memory.value > 0, "pod memory {memory:?}");
    assert_eq!(linux.containers.len(), 1, "{linux:?}");
    let c = &linux.containers[0];
    assert_eq!(
        c.attributes.as_ref().map(|a| a.id.as_str()),
        Some(sleeper.as_str())
    );
    assert!(
        c.cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .is_some_and(|v| v.value > 0),
        "container cpu {c:?}"
    );
    let listed = |filter: cri::PodSandboxStatsFilter| -> Result<Vec<String>> {
        let mut rt = client.runtime()?;
        Ok(client
            .block_on(rt.list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest {
                filter: Some(filter),
            }))?
            .into_inner()
            .stats
            .into_iter()
            .filter_map(|s| s.attributes.map(|a| a.id))
            .collect())
    };
    assert_eq!(listed(Default::default())?, vec![sandbox.clone()]);
    assert_eq!(
        listed(cri::PodSandboxStatsFilter {
            id: sandbox[..12].into(),
            label_selector: [("app".to_string(), "events".to_string())].into(),
        })?,
        vec![sandbox.clone()]
    );
    assert!(listed(cri::PodSandboxStatsFilter {
        id: String::new(),
        label_selector: [("app".to_string(), "other".to_string())].into(),
    })?
    .is_empty());

    // The pod's process count: the sleeper's one process (each container has its own
    // PID namespace here, so there is no pod init).
    let procs = linux
        .process
        .as_ref()
        .and_then(|p| p.process_count.as_ref())
        .map(|v| v.value);
    assert_eq!(procs, Some(1), "{linux:?}");
    // Host network: the node's interfaces are not the pod's.
    assert!(linux.network.is_none(), "{:?}", linux.network);

    // Metrics: described once, reported per running container from its cgroup.
    let descriptors = client
        .block_on(rt.list_metric_descriptors(cri::ListMetricDescriptorsRequest {}))?
        .into_inner()
        .descriptors;
    let keys = |name: &str| -> Option<Vec<String>> {
        descriptors
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.label_keys.clone())
    };
    let base = vec!["id".to_string(), "name".into(), "image".into()];
    for name in [
        "container_cpu_usage_seconds_total",
        "container_memory_usage_bytes",
        "container_memory_working_set_bytes",
        "container_processes",
    ] {
        assert_eq!(keys(name).as_ref(), Some(&base), "{name}");
    }
    let mut with_interface = base.clone();
    with_interface.push("interface".into());
    assert_eq!(
        keys("container_network_receive_bytes_total"),
        Some(with_interface)
    );
    let pods = client
        .block_on(rt.list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}))?
        .into_inner()
        .pod_metrics;
    assert_eq!(pods.len(), 1, "{pods:#?}");
    let pm = &pods[0];
    assert_eq!(pm.pod_sandbox_id, sandbox);
    // Host network: no pod-level network metrics.
    assert!(pm.metrics.is_empty(), "{:?}", pm.metrics);
    assert_eq!(pm.container_metrics.len(), 1, "{pm:#?}");
    let cm = &pm.container_metrics[0];
    assert_eq!(cm.container_id, sleeper);
    let value = |name: &str| -> Result<u64> {
        let m = cm
            .metrics
            .iter()
            .find(|m| m.name == name)
            .with_context(|| format!("no {name} in {cm:#?}"))?;
        assert_eq!(
            m.label_values,
            vec![sleeper.clone(), "sleeper".to_string(), image.clone()],
            "{m:?}"
        );
        assert_eq!(
            m.label_values.len(),
            keys(name).map(|k| k.len()).unwrap_or(0)
        );
        Ok(m.value.as_ref().map(|v| v.value).unwrap_or(0))
    };
    assert_eq!(value("container_processes")?, 1);
    let rel = format!("{cgroup_parent}/{sleeper}");
    // The usage the metric reported is the cgroup's, give or take what the idle
    // container touched between the two reads.
    let usage = value("container_memory_usage_bytes")?;
    let cgroup_usage: u64 =
        cgroup_file("memory", &rel, "memory.usage_in_bytes", "memory.current")?.parse()?;
    assert!(
        usage > 0 && usage.abs_diff(cgroup_usage) <= 256 * 1024,
        "metric {usage}, cgroup {cgroup_usage}"
    );
    let working_set = value("container_memory_working_set_bytes")?;
    assert!(
        working_set > 0 && working_set <= usage,
        "{working_set} of {usage}"
    );
    assert_eq!(
        value("container_cpu_usage_seconds_total")?,
        cgroup_file("cpuacct", &rel, "cpuacct.usage", "cpu.stat")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ns| ns / 1_000_000_000)
            .unwrap_or(0)
    );

    // A container that exits on its own: its stop comes from the engine, not a request.
    let quitter = client.create_and_start(
        &sandbox,
        &pod,
        container("quitter", &image, "exit 3", "quitter.log"),
    )?;
    let seen = expect_events(
        client,
        &mut events,
        &[
            (&quitter, Ev::ContainerCreatedEvent),
            (&quitter, Ev::ContainerStartedEvent),
            (&quitter, Ev::ContainerStoppedEvent),
        ],
    )?;
    let stopped = seen
        .iter()
        .find(|e| {
            e.container_id == quitter && e.container_event_type == Ev::ContainerStoppedEvent as i32
        })
        .context("no stopped event")?;
    let own = stopped
        .containers_statuses
        .iter()
        .find(|s| s.id == quitter)
        .context("the stop event lacks the container's status")?;
    assert_eq!(own.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(own.exit_code, 3);

    // Stop and remove on request.
    client.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: sleeper.clone(),
        timeout: 0,
    }))?;
    client.block_on(rt.remove_container(cri::RemoveContainerRequest {
        container_id: sleeper.clone(),
    }))?;
    expect_events(
        client,
        &mut events,
        &[
            (&sleeper, Ev::ContainerStoppedEvent),
            (&sleeper, Ev::ContainerDeletedEvent),
        ],
    )?;

    // Checkpointing is refused plainly.
    let err = client
        .block_on(rt.checkpoint_container(cri::CheckpointContainerRequest {
            container_id: quitter.clone(),
            location: work.join("ckpt.tar").display().to_string(),
            timeout: 10,
        }))
        .expect_err("CheckpointContainer succeeded");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(err.message().contains("checkpoint"), "{}", err.message());

    // The pod goes, its remaining container with it: a deleted event.
    client.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    expect_events(
        client,
        &mut events,
        &[(&quitter, Ev::ContainerDeletedEvent)],
    )?;
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    Ok(())
}

/// A CRI channel whose streams advertise a receive window of `window` bytes: a stream
/// nobody reads stops the server after that much.
fn small_window_channel(client: &Client, socket: &std::path::Path, window: u32) -> Result<Channel> {
    let path = socket.to_path_buf();
    client.block_on(async move {
        Endpoint::try_from("http://localhost")?
            .initial_stream_window_size(window)
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

/// More than the engine's 1024-event backlog happens while one subscriber reads
/// nothing: its stream ends with DATA_LOSS saying how many events it lost (kubelet
/// relists on that), while a subscriber that kept reading goes on and sees what
/// follows.
#[test]
fn cri_events_lagging_subscriber_is_told_it_lost_events() -> Result<()> {
    require_root();
    let s = setup_base("crievents/busybox", "")?;
    let (berthd, client, image) = (&s.berthd, &s.client, s.base());
    let work = s.work.as_path();
    let socket = berthd.cri_socket();
    let mut rt = client.runtime()?;
    let pod = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "crilag".into(),
            namespace: "default".into(),
            uid: "uid-crilag".into(),
            attempt: 0,
        }),
        log_directory: work.join("logs").display().to_string(),
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
    };
    let (sandbox, _pod_guard) = s.start_pod(&pod)?;

    // The laggard: subscribed on a connection with a 1 KiB stream window, never read
    // until the end, so berthd stops sending (and reading its backlog) after an event.
    let lag_channel = small_window_channel(client, &socket, 1024)?;
    let mut laggard = client
        .block_on(
            RuntimeServiceClient::new(lag_channel).get_container_events(cri::GetEventsRequest {}),
        )?
        .into_inner();

    // The keeper reads all along on its own thread until it sees the sentinel start.
    let (sentinel_tx, sentinel_rx) = std::sync::mpsc::channel::<String>();
    let keeper_socket = socket.clone();
    let keeper = std::thread::spawn(move || -> Result<Vec<(String, i32)>> {
        let client = Client::new(&keeper_socket)?;
        let mut stream = client
            .block_on(
                client
                    .runtime()?
                    .get_container_events(cri::GetEventsRequest {}),
            )?
            .into_inner();
        let mut seen = Vec::new();
        let mut sentinel: Option<String> = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if sentinel.is_none() {
                sentinel = sentinel_rx.try_recv().ok();
            }
            if let Some(id) = &sentinel {
                if seen.contains(&(id.clone(), Ev::ContainerStartedEvent as i32)) {
                    return Ok(seen);
                }
            }
            if std::time::Instant::now() > deadline {
                bail!("the keeper never saw the sentinel start; seen {seen:?}");
            }
            let next = client.block_on(async {
                tokio::time::timeout(Duration::from_millis(500), stream.message()).await
            });
            match next {
                Ok(Ok(Some(e))) => seen.push((e.container_id, e.container_event_type)),
                Ok(Ok(None)) => bail!("the keeper's stream ended; seen {} events", seen.len()),
                Ok(Err(status)) => bail!("the keeper's stream failed: {status}"),
                // Nothing new: look for the sentinel again.
                Err(_) => {}
            }
        }
    });

    // Some containers, so each event (which carries every container's status) is big.
    let mut ids = Vec::new();
    for i in 0..8 {
        let id = client
            .block_on(rt.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(container(
                    &format!("c{i}"),
                    &image,
                    "exec sleep 3600",
                    &format!("c{i}.log"),
                )),
                sandbox_config: Some(pod.clone()),
            }))?
            .into_inner()
            .container_id;
        ids.push(id);
    }
    // Every update rewrites the container's record: one engine event each, 1300 of
    // them, more than the 1024 the engine keeps for a reader.
    let started = std::time::Instant::now();
    for i in 0..1300 {
        client.block_on(
            rt.update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: ids[0].clone(),
                linux: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: (64 << 20) + i * 4096,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )?;
    }
    eprintln!("1300 updates in {:?}", started.elapsed());
    // A change after the flood: the keeper must see it.
    client.block_on(rt.start_container(cri::StartContainerRequest {
        container_id: ids[1].clone(),
    }))?;
    sentinel_tx.send(ids[1].clone())?;
    let kept = keeper
        .join()
        .map_err(|_| anyhow::anyhow!("the keeper thread panicked"))??;
    for id in &ids {
        assert!(
            kept.contains(&(id.clone(), Ev::ContainerCreatedEvent as i32)),
            "the keeper missed {id}'s creation: {kept:?}"
        );
    }

    // The laggard: whatever was in flight, then the error, then nothing.
    let mut delivered = 0;
    let status = loop {
        let next = client.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), laggard.message()).await
        });
        match next {
            Ok(Ok(Some(_))) => delivered += 1,
            Ok(Ok(None)) => {
                bail!("the laggard's stream ended without an error after {delivered} events")
            }
            Ok(Err(status)) => break status,
            Err(_) => {
                bail!("the laggard got neither events nor an error in 20 s ({delivered} events)")
            }
        }
    };
    assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
    assert!(
        status.message().contains("container events were dropped")
            && status.message().contains("relist"),
        "{}",
        status.message()
    );
    // How many were lost is a number in the message.
    let lost: u64 = status
        .message()
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .context("no count in the message")?;
    assert!(lost > 0, "{}", status.message());
    assert!(
        delivered < ids.len(),
        "{delivered} events reached a reader that read nothing"
    );
    assert!(client
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), laggard.message()).await })
        .is_ok_and(|r| matches!(r, Ok(None) | Err(_))));

    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    Ok(())
}
