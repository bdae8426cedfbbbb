//! Issue 8's events and pod stats: GetContainerEvents streams the engine's lifecycle
//! changes of CRI containers (created, started, stopped, on request or on their own,
//! deleted, also when the pod goes), each with its pod's status and the pod's
//! container statuses; PodSandboxStats and ListPodSandboxStats report the pod's cgroup
//! and its containers; the metrics RPCs answer empty lists; CheckpointContainer says
//! plainly that berth does not checkpoint.

mod cri_common;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, Berthd};
use k8s_cri::v1 as cri;
use k8s_cri::v1::ContainerEventType as Ev;

use cri_common::{cgroup_dirs, container, mounts_under, Client, PodGuard};

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
    let work = tempfile::tempdir()?;
    let img_dir = tempfile::tempdir()?;
    let img = berth_fixtures::images::base(img_dir.path())?;
    let registry = berth_fixtures::Registry::start()?;
    let image = registry.push(&img, "crievents/busybox:v1")?;
    // Host network: this pod needs no CNI.
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
        log_directory: work.path().join("logs").display().to_string(),
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

    // A long-running container: created, then started.
    let sleeper = client.create_and_start(
        &sandbox,
        &pod,
        container("sleeper", &image, "exec sleep 3600", "sleeper.log"),
    )?;
    let seen = expect_events(
        &client,
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

    // A container that exits on its own: its stop comes from the engine, not a request.
    let quitter = client.create_and_start(
        &sandbox,
        &pod,
        container("quitter", &image, "exit 3", "quitter.log"),
    )?;
    let seen = expect_events(
        &client,
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
        &client,
        &mut events,
        &[
            (&sleeper, Ev::ContainerStoppedEvent),
            (&sleeper, Ev::ContainerDeletedEvent),
        ],
    )?;

    // The metrics RPCs answer empty lists; checkpointing is refused plainly.
    let descriptors = client
        .block_on(rt.list_metric_descriptors(cri::ListMetricDescriptorsRequest {}))?
        .into_inner();
    assert!(descriptors.descriptors.is_empty());
    let metrics = client
        .block_on(rt.list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}))?
        .into_inner();
    assert!(metrics.pod_metrics.is_empty());
    let err = client
        .block_on(rt.checkpoint_container(cri::CheckpointContainerRequest {
            container_id: quitter.clone(),
            location: work.path().join("ckpt.tar").display().to_string(),
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
        &client,
        &mut events,
        &[(&quitter, Ev::ContainerDeletedEvent)],
    )?;
    assert_eq!(mounts_under(berthd.dir()), Vec::<String>::new());
    Ok(())
}
