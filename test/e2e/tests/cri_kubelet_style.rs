//! What kubelet and crictl send, taken literally: optional fields left empty and long
//! generated names. A pod without a hostname keeps the node's name (as containerd); a
//! security context with a group but no user, and a deprecated seccomp path without the
//! `localhost/` prefix, are refused (as containerd and CRI-O), creating nothing.

mod cri_common;

use std::collections::HashMap;

use anyhow::Result;
use berth_e2e::require_root;
use k8s_cri::v1 as cri;

use cri_common::{container, setup_base, Setup};

/// A pod name as `crictl run` and kubelet's tests generate them: more than 64 characters.
const LONG_NAME: &str = "create-PodSandbox-for-container-2fcf5cbc-ef98-11f1-b977-1e86d971c08e";

/// A pod with its own network, IPC and UTS namespaces and nothing optional set: no
/// hostname, no DNS config, no labels, no log directory.
fn kubelet_pod(uid: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: LONG_NAME.into(),
            namespace: "default".into(),
            uid: uid.into(),
            attempt: 0,
        }),
        ..Default::default()
    }
}

/// The pod network: the loopback plugin alone, so the pod gets its own namespace
/// without a bridge or an address outside it.
fn loopback_network(setup: &Setup) -> Result<()> {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "crie2e-lo",
        "plugins": [{"type": "loopback"}]
    });
    std::fs::write(
        setup.work.join("net.d").join("10-lo.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    Ok(())
}

fn node_hostname() -> Result<String> {
    Ok(nix::unistd::gethostname()?.to_string_lossy().into_owned())
}

#[test]
fn a_pod_without_a_hostname_keeps_the_nodes_name() -> Result<()> {
    require_root();
    let setup = setup_base("crie2e/kubelet", "")?;
    loopback_network(&setup)?;
    let pod = kubelet_pod("2fcf5cbc-ef98-11f1-b977-1e86d971c08e");
    let (pod_id, _guard) = setup.start_pod(&pod)?;
    let mut config = container(
        "create-container-for-2fcf5cbc-ef98-11f1-b977-1e86d971c08e-sleeper",
        &setup.base(),
        "sleep 300",
        "",
    );
    // No log path (crictl leaves it and the pod's log directory empty), labels or
    // annotations.
    config.labels = HashMap::new();
    config.annotations = HashMap::new();
    let id = setup.client.create_and_start(&pod_id, &pod, config)?;

    let node = node_hostname()?;
    let inside = setup.client.exec(
        &id,
        &[
            "sh",
            "-c",
            "hostname; cat /etc/hostname; echo \"$HOSTNAME\"; readlink /proc/self/ns/uts",
        ],
        10,
    )?;
    let out = String::from_utf8_lossy(&inside.stdout).into_owned();
    assert_eq!(inside.exit_code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], node, "the UTS namespace keeps the node's name");
    assert_eq!(lines[1], node, "/etc/hostname");
    assert_eq!(lines[2], node, "HOSTNAME in the environment");
    let host_uts = std::fs::read_link("/proc/self/ns/uts")?;
    assert_ne!(
        lines[3],
        host_uts.to_string_lossy(),
        "the pod still has a UTS namespace of its own"
    );

    // Each call's log lines carry the ids it is about, also the ids the call made.
    let log = setup.berthd.log();
    for (rpc, id) in [
        ("RunPodSandbox", &pod_id),
        ("CreateContainer", &id),
        ("StartContainer", &id),
        ("ExecSync", &id),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(rpc) && l.contains(id.as_str())),
            "no {rpc} line names {id} in berthd's log:\n{log}"
        );
    }

    // The status reports the pod as created, under its long name.
    let mut rt = setup.client.runtime()?;
    let status = setup
        .client
        .block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.clone(),
            verbose: false,
        }))?
        .into_inner()
        .status
        .unwrap_or_default();
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.metadata.unwrap_or_default().name, LONG_NAME);
    Ok(())
}

#[test]
#[allow(deprecated)] // seccomp_profile_path is what older kubelets send
fn security_contexts_kubelet_would_refuse_are_refused() -> Result<()> {
    require_root();
    let setup = setup_base("crie2e/kubelet-sc", "")?;
    let pod = cri_common::host_pod("kubelet-sc", &setup.work);
    let (pod_id, _guard) = setup.start_pod(&pod)?;
    let create = |sc: cri::LinuxContainerSecurityContext| -> Result<tonic::Status> {
        let mut config = container("refused", &setup.base(), "true", "");
        config.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(sc),
            ..Default::default()
        });
        let mut rt = setup.client.runtime()?;
        match setup
            .client
            .block_on(rt.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.clone()),
            })) {
            Ok(resp) => anyhow::bail!(
                "created container {} from a config that must be refused",
                resp.into_inner().container_id
            ),
            Err(status) => Ok(status),
        }
    };

    let status = create(cri::LinuxContainerSecurityContext {
        run_as_group: Some(cri::Int64Value { value: 1000 }),
        ..Default::default()
    })?;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("run_as_group") && status.message().contains("run_as_user"),
        "{status:?}"
    );

    // A real profile file, so the refusal is about the missing prefix, not the file.
    let profile = setup.work.join("block-hostname.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )?;
    let path = profile.display().to_string();
    let status = create(cri::LinuxContainerSecurityContext {
        seccomp_profile_path: path.clone(),
        ..Default::default()
    })?;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("unknown seccomp profile") && status.message().contains(&path),
        "{status:?}"
    );

    // Nothing was created by either.
    let left = setup.client.list(cri::ContainerFilter {
        pod_sandbox_id: pod_id.clone(),
        ..Default::default()
    })?;
    assert!(left.is_empty(), "refused creates left containers: {left:?}");

    // With the prefix, the same file is a Localhost profile and the container runs.
    let mut config = container("allowed", &setup.base(), "sleep 300", "");
    config.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            seccomp_profile_path: format!("localhost/{path}"),
            run_as_user: Some(cri::Int64Value { value: 0 }),
            run_as_group: Some(cri::Int64Value { value: 1000 }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = setup.client.create_and_start(&pod_id, &pod, config)?;
    let out = setup.client.exec(&id, &["id", "-g"], 10)?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000");
    Ok(())
}
