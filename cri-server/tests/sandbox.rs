//! Pod sandboxes with real CNI plugins (/usr/lib/cni) on a bridge each test creates.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::{Env, Server};
use k8s_cri::v1 as cri;

fn config(name: &str, uid: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: uid.into(),
            attempt: 0,
        }),
        hostname: name.into(),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        annotations: HashMap::from([("note".to_string(), "kept".to_string())]),
        ..Default::default()
    }
}

fn run(server: &Server, config: cri::PodSandboxConfig) -> Result<String> {
    let mut rt = server.runtime()?;
    let resp = server.block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    }))?;
    Ok(resp.into_inner().pod_sandbox_id)
}

fn status(server: &Server, id: &str) -> Result<cri::PodSandboxStatus> {
    let mut rt = server.runtime()?;
    let resp = server.block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose: true,
    }))?;
    resp.into_inner().status.context("no status")
}

fn list(server: &Server, filter: cri::PodSandboxFilter) -> Result<Vec<String>> {
    let mut rt = server.runtime()?;
    let resp = server.block_on(rt.list_pod_sandbox(cri::ListPodSandboxRequest {
        filter: Some(filter),
    }))?;
    Ok(resp.into_inner().items.into_iter().map(|p| p.id).collect())
}

fn nsenter(args: &[&str]) -> Result<String> {
    let out = Command::new("nsenter")
        .args(args)
        .output()
        .context("nsenter")?;
    if !out.status.success() {
        bail!("nsenter {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_mountpoint(p: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(&p.display().to_string()))
        })
        .unwrap_or(false)
}

#[test]
fn pod_lifecycle_with_network_namespaces_files_and_ports() -> Result<()> {
    berth_fixtures::require_root();
    let env = Env::new("bcrisb0", "10.253.0.0/24")?;
    let server = Server::start(&env)?;
    let mut pod = config("web-1", "uid-1");
    pod.dns_config = Some(cri::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    pod.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 80,
        host_port: 18_481,
        host_ip: String::new(),
    }];
    let id = run(&server, pod.clone())?;

    let st = status(&server, &id)?;
    assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(st.labels.get("app").map(String::as_str), Some("web-1"));
    assert_eq!(st.annotations.get("note").map(String::as_str), Some("kept"));
    let ip = st.network.context("network")?.ip;
    assert!(ip.starts_with("10.253.0."), "pod IP {ip}");

    // The namespaces berth pinned, checked from inside.
    let state = env.state().join("cri");
    let netns = state.join("netns").join(&id);
    let uts = state.join("uts").join(&id);
    let ipc = state.join("ipc").join(&id);
    let addrs = nsenter(&[
        &format!("--net={}", netns.display()),
        "ip",
        "-4",
        "-o",
        "addr",
    ])?;
    assert!(addrs.contains(&format!("{ip}/24")), "{addrs}");
    assert!(addrs.contains("lo "), "lo is up: {addrs}");
    assert_eq!(
        nsenter(&[&format!("--uts={}", uts.display()), "hostname"])?,
        "web-1"
    );
    let pod_ipc = nsenter(&[
        &format!("--ipc={}", ipc.display()),
        "readlink",
        "/proc/self/ns/ipc",
    ])?;
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc")?
        .display()
        .to_string();
    assert_ne!(pod_ipc, host_ipc, "pod has its own IPC namespace");

    let pod_dir = state.join("pods").join(&id);
    let resolv = std::fs::read_to_string(pod_dir.join("resolv.conf"))?;
    assert_eq!(
        resolv,
        "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    let hosts = std::fs::read_to_string(pod_dir.join("hosts"))?;
    assert!(hosts.contains(&format!("{ip}\tweb-1")), "{hosts}");
    assert_eq!(
        std::fs::read_to_string(pod_dir.join("hostname"))?,
        "web-1\n"
    );

    // The hostPort reaches a listener inside the pod from the host's loopback.
    let mut listener = Command::new("nsenter")
        .args([
            &format!("--net={}", netns.display()),
            "busybox",
            "nc",
            "-l",
            "-p",
            "80",
            "-e",
            "echo",
            "from-pod",
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let mut got = String::new();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", 18_481)) {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let _ = s.write_all(b"\n");
            let _ = s.read_to_string(&mut got);
            if !got.is_empty() {
                break;
            }
        }
    }
    let _ = listener.kill();
    let _ = listener.wait();
    assert_eq!(got.trim(), "from-pod");

    // Same metadata again: AlreadyExists.
    let mut rt = server.runtime()?;
    let again = server.block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(pod),
        runtime_handler: String::new(),
    }));
    assert_eq!(
        again.err().map(|e| e.code()),
        Some(tonic::Code::AlreadyExists)
    );

    // Filters.
    let other = run(&server, config("db-1", "uid-2"))?;
    let ready = cri::PodSandboxStateValue {
        state: cri::PodSandboxState::SandboxReady as i32,
    };
    assert_eq!(list(&server, Default::default())?.len(), 2);
    assert_eq!(
        list(
            &server,
            cri::PodSandboxFilter {
                id: id[..10].into(),
                ..Default::default()
            }
        )?,
        vec![id.clone()]
    );
    let by_label = cri::PodSandboxFilter {
        label_selector: HashMap::from([("app".to_string(), "db-1".to_string())]),
        ..Default::default()
    };
    assert_eq!(list(&server, by_label)?, vec![other.clone()]);

    // Stop: network released, idempotent.
    server.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    }))?;
    server.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    }))?;
    assert!(!netns.exists(), "netns pin removed at stop");
    let st = status(&server, &id)?;
    assert_eq!(st.state, cri::PodSandboxState::SandboxNotready as i32);
    assert_eq!(
        list(
            &server,
            cri::PodSandboxFilter {
                state: Some(ready),
                ..Default::default()
            }
        )?,
        vec![other.clone()]
    );

    // Remove: pins and files gone, idempotent, then NotFound.
    for pod in [&id, &other] {
        server.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        }))?;
        server.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        }))?;
    }
    for p in [&netns, &uts, &ipc, &pod_dir] {
        assert!(
            !p.exists() && !is_mountpoint(p),
            "{} left behind",
            p.display()
        );
    }
    let gone = server.block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
        pod_sandbox_id: id,
        verbose: false,
    }));
    assert_eq!(gone.err().map(|e| e.code()), Some(tonic::Code::NotFound));
    let leftovers = std::fs::read_dir(env.path().join("ipam/bcrisb0-net"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
        .count();
    assert_eq!(leftovers, 0, "IPAM reservations released");
    Ok(())
}

#[test]
fn sandboxes_survive_a_server_restart() -> Result<()> {
    berth_fixtures::require_root();
    let env = Env::new("bcrisb1", "10.253.1.0/24")?;
    let (id, ip) = {
        let server = Server::start(&env)?;
        let id = run(&server, config("keep", "uid-keep"))?;
        let ip = status(&server, &id)?.network.context("network")?.ip;
        (id, ip)
    };
    let server = Server::start(&env)?;
    assert_eq!(list(&server, Default::default())?, vec![id.clone()]);
    let st = status(&server, &id)?;
    assert_eq!(st.network.context("network")?.ip, ip);
    assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
    let mut rt = server.runtime()?;
    let dup = server.block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(config("keep", "uid-keep")),
        runtime_handler: String::new(),
    }));
    assert_eq!(
        dup.err().map(|e| e.code()),
        Some(tonic::Code::AlreadyExists)
    );
    server.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id }))?;
    assert!(list(&server, Default::default())?.is_empty());
    Ok(())
}

#[test]
fn host_network_pod_uses_the_host_namespaces() -> Result<()> {
    berth_fixtures::require_root();
    let env = Env::new("bcrisb2", "10.253.2.0/24")?;
    let server = Server::start(&env)?;
    let mut pod = config("hostnet", "uid-h");
    pod.linux = Some(cri::LinuxPodSandboxConfig {
        security_context: Some(cri::LinuxSandboxSecurityContext {
            namespace_options: Some(cri::NamespaceOption {
                network: cri::NamespaceMode::Node as i32,
                ipc: cri::NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = run(&server, pod)?;
    let st = status(&server, &id)?;
    assert_eq!(
        st.network.context("network")?.ip,
        "",
        "host network pods report no pod IP"
    );
    let state = env.state().join("cri");
    for kind in ["netns", "uts", "ipc"] {
        assert!(
            !state.join(kind).join(&id).exists(),
            "no {kind} pin for a host-network, host-IPC pod"
        );
    }
    let mut rt = server.runtime()?;
    server.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id }))?;
    Ok(())
}

#[test]
fn failed_network_setup_leaves_nothing_behind() -> Result<()> {
    berth_fixtures::require_root();
    let env = Env::new("bcrisb3", "10.253.3.0/24")?;
    let broken = serde_json::json!({
        "cniVersion": "1.0.0", "name": "broken",
        "plugins": [{"type": "bridge", "bridge": "bcrisb3", "ipam": {"type": "host-local", "ranges": []}}]
    });
    std::fs::write(
        env.path().join("net.d/10-test.conflist"),
        serde_json::to_vec(&broken)?,
    )?;
    let server = Server::start(&env)?;
    let mut rt = server.runtime()?;
    let res = server.block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(config("broken", "uid-b")),
        runtime_handler: String::new(),
    }));
    assert!(
        res.is_err(),
        "RunPodSandbox succeeded with a broken network"
    );
    assert!(list(&server, Default::default())?.is_empty());
    let state = env.state().join("cri");
    for kind in ["netns", "uts", "ipc", "pods"] {
        let left: Vec<_> = std::fs::read_dir(state.join(kind))
            .map(|d| d.flatten().collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{kind} left behind: {left:?}");
    }
    // Bad input: no metadata, bad hostname.
    let no_meta = server.block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(cri::PodSandboxConfig::default()),
        runtime_handler: String::new(),
    }));
    assert_eq!(
        no_meta.err().map(|e| e.code()),
        Some(tonic::Code::InvalidArgument)
    );
    let mut bad_host = config("badhost", "uid-x");
    bad_host.hostname = "a/b".into();
    let res = server.block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(bad_host),
        runtime_handler: String::new(),
    }));
    assert_eq!(
        res.err().map(|e| e.code()),
        Some(tonic::Code::InvalidArgument)
    );
    Ok(())
}
