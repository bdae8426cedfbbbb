//! Issue 6's leak test through berthd: 50 pods on a real CNI bridge (with port
//! mappings and masquerading, so the plugins write firewall rules), 40 torn down
//! normally, then berthd killed with SIGKILL and restarted, and the last 10 torn down by
//! the new berthd from what it recorded. Afterwards no veth on the bridge, no pinned
//! network namespace, no host-local reservation and no iptables rule of the network
//! may be left.

mod cri_common;

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Result};
use berth_e2e::{require_root, Berthd};
use k8s_cri::v1 as cri;

use cri_common::{mounts_under, Client};

const BRIDGE: &str = "bleak0";
const SUBNET: &str = "10.254.20.0/24";
const NETWORK: &str = "berth-leak-net";
const PODS: usize = 50;

struct BridgeGuard;

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    }
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// veths enslaved to the test's bridge.
fn veths() -> usize {
    output(Command::new("ip").args(["-o", "link", "show", "master", BRIDGE]))
        .lines()
        .count()
}

/// iptables rules (all tables) that name the test's network.
fn rules() -> Vec<String> {
    output(&mut Command::new("iptables-save"))
        .lines()
        .filter(|l| l.contains(NETWORK))
        .map(String::from)
        .collect()
}

/// host-local reservations: one file per reserved address.
fn reservations(ipam: &Path) -> Vec<String> {
    std::fs::read_dir(ipam.join(NETWORK))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

fn teardown(client: &Client, id: &str) -> Result<()> {
    let mut rt = client.runtime()?;
    client.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    }))?;
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    }))?;
    Ok(())
}

#[test]
fn fifty_pods_leave_nothing_behind_across_a_kill9() -> Result<()> {
    require_root();
    let _bridge = BridgeGuard;
    let work = tempfile::tempdir()?;
    let ipam = work.path().join("ipam");
    let conf_dir = work.path().join("net.d");
    std::fs::create_dir_all(&conf_dir)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                      "dataDir": ipam}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    std::fs::write(
        conf_dir.join("10-leak.conflist"),
        serde_json::to_vec_pretty(&conf)?,
    )?;
    let config = format!(
        "[cni]\nconf_dir = {:?}\nbin_dirs = [\"/usr/lib/cni\", \"/opt/cni/bin\"]\n",
        conf_dir.display().to_string()
    );
    let rules_before = rules();
    ensure!(
        rules_before.is_empty(),
        "rules of {NETWORK} exist before the test: {rules_before:?}"
    );

    let mut berthd = Berthd::start_with_config(&config)?;
    let mut ids = Vec::new();
    {
        let client = Client::new(&berthd.cri_socket())?;
        let mut rt = client.runtime()?;
        for i in 0..PODS {
            let pod = cri::PodSandboxConfig {
                metadata: Some(cri::PodSandboxMetadata {
                    name: format!("leak{i}"),
                    namespace: "default".into(),
                    uid: format!("uid-leak{i}"),
                    attempt: 0,
                }),
                port_mappings: if i % 5 == 0 {
                    vec![cri::PortMapping {
                        protocol: cri::Protocol::Tcp as i32,
                        container_port: 80,
                        host_port: 31000 + i as i32,
                        host_ip: "127.0.0.1".into(),
                    }]
                } else {
                    Vec::new()
                },
                log_directory: work.path().join("logs").display().to_string(),
                ..Default::default()
            };
            let id = client
                .block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(pod),
                    runtime_handler: String::new(),
                }))?
                .into_inner()
                .pod_sandbox_id;
            ids.push(id);
        }
        // While the pods live, everything the checks look for exists: they can fail.
        ensure!(veths() == PODS, "{} veths for {PODS} pods", veths());
        ensure!(
            reservations(&ipam).len() == PODS,
            "reservations: {:?}",
            reservations(&ipam)
        );
        ensure!(
            !rules().is_empty(),
            "the plugins wrote no rule naming {NETWORK}"
        );
        for id in &ids[..40] {
            teardown(&client, id)?;
        }
    }

    berthd.kill9()?;
    berthd.restart()?;
    let client = Client::new(&berthd.cri_socket())?;
    for id in &ids[40..] {
        teardown(&client, id)?;
    }

    ensure!(veths() == 0, "{} veths left on {BRIDGE}", veths());
    ensure!(
        reservations(&ipam).is_empty(),
        "addresses still reserved: {:?}",
        reservations(&ipam)
    );
    let left = rules();
    ensure!(left.is_empty(), "iptables rules left: {left:?}");
    let pinned = mounts_under(&berthd.state());
    ensure!(pinned.is_empty(), "namespaces still pinned: {pinned:?}");
    Ok(())
}
