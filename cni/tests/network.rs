//! Pods attached with Debian's containernetworking-plugins through berth's default network.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_cni::{PortMapping, DEFAULT_CONFLIST};
use common::{run_in, TestNet};

#[test]
fn two_pods_reach_each_other() -> Result<()> {
    let t = TestNet::new(11)?;
    let status = t.cni.status();
    assert!(status.ready, "{status:?}");
    assert!(
        t.conf_dir().join(DEFAULT_CONFLIST).exists(),
        "default network written"
    );
    let (ns_a, pod_a) = t.pod("a11")?;
    let (ns_b, pod_b) = t.pod("b11")?;
    let a = t.cni.setup(&pod_a)?;
    let b = t.cni.setup(&pod_b)?;
    // A retried setup reuses the finished ADD instead of allocating again.
    assert_eq!(t.cni.setup(&pod_a)?.ips, a.ips);
    assert_eq!(t.ipam_reservations()?.len(), 2);
    assert_eq!(a.network, t.network);
    assert_eq!(a.ips.len(), 1);
    let ip_b = b.ips[0].to_string();
    assert!(ip_b.starts_with(&t.subnet_prefix()), "{ip_b}");
    assert_ne!(a.ips, b.ips);
    // The result names the pod's interface with its netns.
    assert!(a
        .result
        .interfaces
        .iter()
        .any(|i| i.name == "eth0" && i.sandbox == pod_a.netns.display().to_string()));
    // lo is up in the pod, eth0 has the address.
    let addrs = run_in(&ns_a, "ip", &["-o", "addr"])?;
    assert!(
        addrs.contains("lo ") && addrs.contains(&a.ips[0].to_string()),
        "{addrs}"
    );
    run_in(
        &ns_a,
        "/bin/busybox",
        &["ping", "-c", "1", "-W", "3", &ip_b],
    )?;
    run_in(
        &ns_a,
        "/bin/busybox",
        &["ping", "-c", "1", "-W", "3", "127.0.0.1"],
    )?;
    t.cni.check(&pod_a)?;
    // CHECK notices a broken pod: remove its eth0.
    run_in(&ns_b, "ip", &["link", "del", "eth0"])?;
    let err = t
        .cni
        .check(&pod_b)
        .err()
        .context("CHECK passed for a pod without eth0")?;
    assert!(err.to_string().contains(&t.network), "{err}");
    for (ns, pod) in [(ns_a, pod_a), (ns_b, pod_b)] {
        t.cni.teardown(&pod)?;
        ns.remove()?;
        // Teardown is idempotent.
        t.cni.teardown(&pod)?;
    }
    t.assert_clean()
}

fn serve_once(listener: TcpListener, reply: &'static [u8]) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || -> Result<()> {
        for _ in 0..2 {
            let (mut s, _) = listener.accept()?;
            s.write_all(reply)?;
        }
        Ok(())
    })
}

fn fetch(addr: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf)
}

#[test]
fn host_port_reaches_pod_from_loopback_and_other_namespace() -> Result<()> {
    let t = TestNet::new(12)?;
    let host_port: u16 = 29012;
    let (ns_web, mut web) = t.pod("web12")?;
    web.port_mappings = vec![PortMapping {
        host_port,
        container_port: 8080,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }];
    let (ns_cli, cli) = t.pod("cli12")?;
    t.cni.setup(&web)?;
    t.cni.setup(&cli)?;
    // portmap (snat on) lets 127.0.0.1 cross into the bridge: it sets route_localnet on
    // the bridge and masquerades hairpin and localhost-originated connections.
    let localnet = std::fs::read_to_string(format!(
        "/proc/sys/net/ipv4/conf/{}/route_localnet",
        t.bridge
    ))?;
    assert_eq!(localnet.trim(), "1");
    // A listener created inside the pod's namespace, served from a host thread.
    let listener = ns_web.run(|| TcpListener::bind("0.0.0.0:8080"))??;
    let server = serve_once(listener, b"hello from the pod");
    // From the host's loopback: portmap's OUTPUT DNAT plus route_localnet and SNAT.
    assert_eq!(
        fetch(&format!("127.0.0.1:{host_port}"))?,
        "hello from the pod"
    );
    // From another pod's namespace, to the host's bridge address (hairpin through the host).
    let gw = t.gateway();
    let from_other = ns_cli.run(move || fetch(&format!("{gw}:{host_port}")))??;
    assert_eq!(from_other, "hello from the pod");
    match server.join() {
        Ok(r) => r?,
        Err(_) => bail!("server thread panicked"),
    }
    let rules = t.firewall_rules()?;
    assert!(
        rules.iter().any(|r| r.contains("--dport 29012")),
        "{rules:?}"
    );
    for (ns, pod) in [(ns_web, web), (ns_cli, cli)] {
        t.cni.teardown(&pod)?;
        ns.remove()?;
    }
    let left: Vec<String> = t.firewall_rules()?;
    assert!(left.is_empty(), "{left:?}");
    assert!(fetch(&format!("127.0.0.1:{host_port}")).is_err());
    t.assert_clean()
}

/// Why new network namespaces here have no IPv6, if they have none: the kernel was
/// booted with ipv6.disable=1, or new namespaces inherit the host's disable_ipv6=1.
fn no_ipv6() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        return Some(
            "the kernel has no IPv6 (/proc/sys/net/ipv6 is missing: ipv6.disable=1?)".into(),
        );
    }
    let inherit = read("/proc/sys/net/core/devconf_inherit_init_net").unwrap_or_default();
    let disabled = read("/proc/sys/net/ipv6/conf/default/disable_ipv6").unwrap_or_default();
    (inherit != "0" && !inherit.is_empty() && disabled == "1")
        .then(|| "new network namespaces inherit net.ipv6.conf.default.disable_ipv6=1".to_string())
}

#[test]
fn dual_stack_pods_get_both_addresses() -> Result<()> {
    if let Some(why) = no_ipv6() {
        eprintln!("skipped: dual-stack pods ({why})");
        return Ok(());
    }
    let t = TestNet::new(20)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": t.network,
        "plugins": [
            {"type": "bridge", "bridge": t.bridge, "isGateway": true,
             "ipam": {"type": "host-local", "dataDir": t.dir.path().join("ipam"),
                      "ranges": [[{"subnet": "fd00:250:20::/64"}], [{"subnet": "10.250.20.0/24"}]]}},
        ]
    });
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-dual.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    let (ns_a, pod_a) = t.pod("a20")?;
    let (ns_b, pod_b) = t.pod("b20")?;
    let a = t.cni.setup(&pod_a)?;
    let b = t.cni.setup(&pod_b)?;
    assert_eq!(a.ips.len(), 2, "{:?}", a.ips);
    assert!(
        a.ips[0].is_ipv4() && a.ips[1].is_ipv6(),
        "IPv4 first: {:?}",
        a.ips
    );
    run_in(
        &ns_a,
        "/bin/busybox",
        &["ping", "-c", "1", "-W", "3", &b.ips[0].to_string()],
    )?;
    // IPv6 may need a moment for duplicate address detection on the bridge.
    let v6 = b.ips[1].to_string();
    let mut ok = false;
    for _ in 0..30 {
        if run_in(
            &ns_a,
            "/bin/busybox",
            &["ping", "-6", "-c", "1", "-W", "1", &v6],
        )
        .is_ok()
        {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ok, "no IPv6 reachability to {v6}");
    for (ns, pod) in [(ns_a, pod_a), (ns_b, pod_b)] {
        t.cni.teardown(&pod)?;
        ns.remove()?;
    }
    t.assert_clean()
}

/// The default network masquerades pod traffic leaving the bridge: a peer outside the
/// pod network (a namespace behind its own veth, with no route back to the pods) sees the
/// host's address, and answers.
#[test]
fn default_network_masquerades_outgoing_traffic() -> Result<()> {
    let t = TestNet::new(21)?;
    let (host_if, peer_if) = ("vcni21h", "vcni21p");
    let _ = std::process::Command::new("ip")
        .args(["link", "del", host_if])
        .output();
    let ext = berth_cni::Netns::create(&t.netns_dir(), "ext21")?;
    struct Cleanup<'a>(&'a berth_cni::Netns, &'static str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.remove();
            let _ = std::process::Command::new("ip")
                .args(["link", "del", self.1])
                .output();
        }
    }
    let _cleanup = Cleanup(&ext, host_if);
    let ip = |args: &[&str]| -> Result<()> {
        let out = std::process::Command::new("ip").args(args).output()?;
        if !out.status.success() {
            bail!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    ip(&[
        "link", "add", host_if, "type", "veth", "peer", "name", peer_if,
    ])?;
    ip(&[
        "link",
        "set",
        peer_if,
        "netns",
        &ext.path().display().to_string(),
    ])?;
    ip(&["addr", "add", "10.251.21.1/24", "dev", host_if])?;
    ip(&["link", "set", host_if, "up"])?;
    run_in(
        &ext,
        "ip",
        &["addr", "add", "10.251.21.2/24", "dev", peer_if],
    )?;
    run_in(&ext, "ip", &["link", "set", peer_if, "up"])?;
    let listener = ext.run(|| TcpListener::bind("10.251.21.2:8021"))??;
    let server = std::thread::spawn(move || -> Result<String> {
        let (mut s, peer) = listener.accept()?;
        s.write_all(peer.ip().to_string().as_bytes())?;
        Ok(peer.ip().to_string())
    });

    let (ns, pod) = t.pod("masq21")?;
    let attached = t.cni.setup(&pod)?;
    let seen = ns.run(|| fetch("10.251.21.2:8021"))??;
    let server_saw = match server.join() {
        Ok(r) => r?,
        Err(_) => bail!("server thread panicked"),
    };
    assert_eq!(seen, server_saw);
    assert_eq!(
        seen, "10.251.21.1",
        "pod {:?} was not masqueraded",
        attached.ips
    );
    t.cni.teardown(&pod)?;
    ns.remove()?;
    drop(_cleanup);
    t.assert_clean()
}
