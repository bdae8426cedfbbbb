//! Nothing is left behind: many pods attached and detached in every order a node sees
//! (netns removed first, daemon restarted, daemon killed mid-ADD).

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_cni::{Netns, PodNetwork, PortMapping};
use common::{write_recorder_plugin, TestNet};

#[test]
fn fifty_pods_leave_nothing_behind() -> Result<()> {
    let t = TestNet::new(30)?;
    // Five workers attach in parallel, as kubelet starts pods.
    let started = Instant::now();
    let mut pods = std::thread::scope(|s| -> Result<Vec<_>> {
        let workers: Vec<_> = (0..5u16)
            .map(|w| {
                let t = &t;
                s.spawn(move || -> Result<Vec<_>> {
                    let mut mine = Vec::new();
                    for i in (0..50u16).filter(|i| i % 5 == w) {
                        let (ns, mut pod) = t.pod(&format!("leak30-{i}"))?;
                        if i % 5 == 0 {
                            pod.port_mappings = vec![PortMapping {
                                host_port: 29100 + i,
                                container_port: 80,
                                protocol: if i % 10 == 0 { "tcp" } else { "udp" }.into(),
                                host_ip: String::new(),
                            }];
                        }
                        t.cni
                            .setup(&pod)
                            .with_context(|| format!("setup of pod {i}"))?;
                        mine.push((i, ns, pod));
                    }
                    Ok(mine)
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            match w.join() {
                Ok(r) => all.extend(r?),
                Err(_) => bail!("a setup worker panicked"),
            }
        }
        Ok(all)
    })?;
    pods.sort_by_key(|(i, _, _)| *i);
    let setup_time = started.elapsed();
    assert_eq!(t.bridge_ports()?.len(), 50);
    assert_eq!(t.ipam_reservations()?.len(), 50);
    assert_eq!(t.cache_left()?.len(), 50);
    let rules = t.firewall_rules()?;
    assert!(
        rules.len() >= 50,
        "expected per-pod rules, got {}",
        rules.len()
    );

    // A restarted daemon: a new Cni over the same dirs that knows only the pod ids.
    let restarted = t.fresh_cni();
    let started = Instant::now();
    for (i, ns, pod) in pods {
        match i % 6 {
            // The normal order: detach, then drop the namespace.
            0 | 3 => {
                t.cni.teardown(&pod)?;
                ns.remove()?;
            }
            // The namespace went first (node reboot, crash): DEL without a netns.
            1 | 4 => {
                ns.remove()?;
                t.cni.teardown(&pod)?;
            }
            // After a restart, from the cache alone.
            2 => {
                let bare = PodNetwork {
                    id: pod.id.clone(),
                    netns: pod.netns.clone(),
                    ..Default::default()
                };
                restarted.teardown(&bare)?;
                ns.remove()?;
            }
            // After a restart, with the namespace gone too.
            _ => {
                ns.remove()?;
                let bare = PodNetwork {
                    id: pod.id.clone(),
                    ..Default::default()
                };
                restarted.teardown(&bare)?;
            }
        }
    }
    let teardown_time = started.elapsed();
    eprintln!("50 pods: setup {setup_time:?}, teardown {teardown_time:?}");
    t.assert_clean()
}

/// A daemon killed with SIGKILL in the middle of ADD: the pod's IP is reserved and its
/// veth exists, but no result was cached. A restarted daemon's teardown still frees both.
#[test]
fn teardown_after_daemon_killed_mid_add() -> Result<()> {
    if std::env::var_os("BERTH_CNI_CHILD").is_some() {
        return Ok(());
    }
    let t = TestNet::new(31)?;
    let record = t.dir.path().join("record");
    write_recorder_plugin(&t.bin_dir(), "stall", &record, 20, false)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": t.network,
        "plugins": [
            {"type": "bridge", "bridge": t.bridge, "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "dataDir": t.dir.path().join("ipam"),
                      "ranges": [[{"subnet": format!("10.250.{}.0/24", t.n)}]]}},
            {"type": "stall"},
        ]
    });
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-stall.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    let ns = Netns::create(&t.netns_dir(), "kill31")?;

    // The "daemon": this test binary re-run as a child that calls setup.
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "child_setup", "--nocapture"])
        .env("BERTH_CNI_CHILD", t.dir.path())
        .env("BERTH_CNI_NETNS", ns.path())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !record.join("ADD.json").exists() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the child never reached the stalling plugin");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    // The orphaned plugin would go on sleeping; end it as a node reboot would.
    let add: serde_json::Value = serde_json::from_slice(&std::fs::read(record.join("ADD.json"))?)?;
    if let Some(pid) = add["pid"].as_i64() {
        kill9(pid);
    }
    assert_eq!(t.ipam_reservations()?.len(), 1, "bridge ADD ran");
    assert_eq!(t.bridge_ports()?.len(), 1);

    let restarted = t.fresh_cni();
    let pod = PodNetwork {
        id: "kill31".into(),
        netns: ns.path().to_path_buf(),
        ..Default::default()
    };
    restarted.teardown(&pod)?;
    ns.remove()?;
    t.assert_clean()
}

fn kill9(pid: i64) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

/// Runs only inside the child of `teardown_after_daemon_killed_mid_add`.
#[test]
fn child_setup() -> Result<()> {
    let Some(dir) = std::env::var_os("BERTH_CNI_CHILD") else {
        return Ok(());
    };
    let netns = std::env::var_os("BERTH_CNI_NETNS").context("BERTH_CNI_NETNS")?;
    let cni = berth_cni::Cni::new(TestNet::options_in(std::path::Path::new(&dir), 31));
    let pod = PodNetwork {
        id: "kill31".into(),
        namespace: "testns".into(),
        name: "kill31".into(),
        uid: "u31".into(),
        netns: netns.into(),
        ..Default::default()
    };
    cni.setup(&pod)?;
    bail!("setup finished although the plugin stalls")
}
