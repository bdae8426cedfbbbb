//! Name resolution on user networks through Debian's docker 20.10 client: the
//! embedded DNS server on each network's gateway answers container names and aliases
//! to containers of that network only, forwards other names to berthd's upstream (a
//! fake resolver on loopback that this test runs: no query leaves the machine), comes
//! back after a berthd `kill -9`, and closes when the network's last container goes;
//! `--dns`, `--dns-search` and `--dns-option` in resolv.conf.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd, BridgeGuard};

/// The name, type and id of a DNS query, and an answer to it with `addr` (none:
/// NXDOMAIN), enough for the fake upstream.
fn fake_answer(msg: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos..pos + len)?).to_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    let name = labels.join(".");
    let found = name == "fwd.example";
    let a = found && qtype == 1;
    let mut out = msg.get(..2)?.to_vec();
    out.extend_from_slice(&[0x81, if found { 0x80 } else { 0x83 }, 0, 1, 0, u8::from(a)]);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(msg.get(12..pos + 4)?);
    if a {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 55]);
    }
    Some((name, out))
}

/// A resolver on 127.0.0.1 answering `fwd.example` with 192.0.2.55 and every other
/// name with NXDOMAIN; counts the queries it saw for `fwd.example`.
fn fake_upstream() -> Result<(u16, Arc<AtomicUsize>)> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let port = sock.local_addr()?.port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Some((name, reply)) = fake_answer(&buf[..n]) else {
                continue;
            };
            if name == "fwd.example" {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            let _ = sock.send_to(&reply, from);
        }
    });
    Ok((port, seen))
}

fn ip_of(berthd: &Berthd, name: &str, network: &str) -> Result<String> {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    Ok(
        run_ok(berthd.docker().args(["inspect", "--format", &format, name]))?
            .trim()
            .to_string(),
    )
}

/// `nslookup NAME` in container `from`: the addresses answered, or None.
fn lookup(berthd: &Berthd, from: &str, name: &str) -> Result<Option<Vec<String>>> {
    let (code, out, err) = run(berthd.docker().args(["exec", from, "nslookup", name]))?;
    if code != 0 {
        assert!(
            out.contains("NXDOMAIN") || err.contains("NXDOMAIN"),
            "nslookup {name} in {from}: {out}{err}"
        );
        return Ok(None);
    }
    // After the server's own lines: "Name: x" then "Address: ip".
    let addrs: Vec<String> = out
        .split("Name:")
        .skip(1)
        .flat_map(|part| {
            part.lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Some(addrs))
}

#[test]
fn containers_resolve_each_other_on_their_networks_only() -> Result<()> {
    require_root();
    let (port, forwarded) = fake_upstream()?;
    let mut berthd = Berthd::start_with_config(&format!(
        "[networks]\ndefault_bridge = \"bt-dns-def\"\ndefault_subnet = \"10.223.0.0/24\"\ndns_upstreams = [\"127.0.0.1:{port}\"]\n"
    ))?;
    let _bridges = BridgeGuard(&["bt-dns-x", "bt-dns-y"]);
    berthd.import_busybox("busybox")?;
    for (name, subnet, bridge) in [
        ("dnsx", "10.221.0.0/24", "bt-dns-x"),
        ("dnsy", "10.222.0.0/24", "bt-dns-y"),
    ] {
        run_ok(berthd.docker().args([
            "network",
            "create",
            "--subnet",
            subnet,
            "-o",
            &format!("com.docker.network.bridge.name={bridge}"),
            name,
        ]))?;
    }
    let gw_x = Ipv4Addr::new(10, 221, 0, 1);
    assert_eq!(
        berth_e2e::listening_on_dns(gw_x),
        (false, false),
        "a listener before any container"
    );
    let sleeper = |name: &str, net: &str, extra: &[&str]| -> Result<()> {
        let mut cmd = berthd.docker();
        cmd.args(["run", "-d", "--name", name, "--network", net]);
        cmd.args(extra);
        cmd.args(["busybox", "sleep", "600"]);
        run_ok(&mut cmd).map(|_| ())
    };
    sleeper(
        "x1",
        "dnsx",
        &["--network-alias", "db", "--hostname", "xhost"],
    )?;
    sleeper("x2", "dnsx", &[])?;
    sleeper(
        "y1",
        "dnsy",
        &[
            "--dns",
            "127.0.0.9",
            "--dns-search",
            "ex.test",
            "--dns-option",
            "ndots:3",
        ],
    )?;
    assert_eq!(
        berth_e2e::listening_on_dns(gw_x),
        (true, true),
        "no listener on dnsx's gateway"
    );
    let x1 = ip_of(&berthd, "x1", "dnsx")?;

    // resolv.conf: the embedded server; with --dns*, its search and options.
    let resolv = run_ok(
        berthd
            .docker()
            .args(["exec", "x2", "cat", "/etc/resolv.conf"]),
    )?;
    assert!(resolv.starts_with("nameserver 10.221.0.1\n"), "{resolv}");
    assert!(resolv.contains("options ndots:0"), "{resolv}");
    let resolv = run_ok(
        berthd
            .docker()
            .args(["exec", "y1", "cat", "/etc/resolv.conf"]),
    )?;
    assert_eq!(
        resolv,
        "nameserver 10.222.0.1\nsearch ex.test\noptions ndots:3\n"
    );

    // Same network: by name, alias and hostname; and reached.
    for name in ["x1", "db", "xhost", "X1"] {
        assert_eq!(
            lookup(&berthd, "x2", name)?,
            Some(vec![x1.clone()]),
            "{name}"
        );
    }
    let out = run_ok(
        berthd
            .docker()
            .args(["exec", "x2", "ping", "-c", "1", "-W", "3", &x1]),
    )?;
    assert!(out.contains("1 packets received"), "{out}");
    // Another network: NXDOMAIN.
    sleeper("y2", "dnsy", &[])?;
    assert_eq!(lookup(&berthd, "y2", "x1")?, None);
    assert_eq!(lookup(&berthd, "y2", "db")?, None);
    assert_eq!(lookup(&berthd, "x2", "y2")?, None);
    let (code, _, _) = run(berthd
        .docker()
        .args(["exec", "y2", "ping", "-c", "1", "-W", "2", &x1]))?;
    assert_ne!(code, 0, "dnsy reached dnsx");

    // Connected to dnsx while running: y2 resolves and reaches x1, and is found by
    // its alias; disconnected: neither.
    run_ok(
        berthd
            .docker()
            .args(["network", "connect", "--alias", "cache", "dnsx", "y2"]),
    )?;
    let y2_x = ip_of(&berthd, "y2", "dnsx")?;
    assert!(y2_x.starts_with("10.221.0."), "{y2_x}");
    assert_eq!(lookup(&berthd, "y2", "x1")?, Some(vec![x1.clone()]));
    assert_eq!(lookup(&berthd, "x2", "cache")?, Some(vec![y2_x.clone()]));
    let out = run_ok(
        berthd
            .docker()
            .args(["exec", "y2", "ping", "-c", "1", "-W", "3", &x1]),
    )?;
    assert!(out.contains("1 packets received"), "{out}");
    // A restart brings both interfaces back.
    run_ok(berthd.docker().args(["restart", "-t", "0", "y2"]))?;
    let links = run_ok(berthd.docker().args(["exec", "y2", "ip", "-o", "link"]))?;
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    let y2_x = ip_of(&berthd, "y2", "dnsx")?;
    assert_eq!(lookup(&berthd, "y2", "x1")?, Some(vec![x1.clone()]));
    assert_eq!(lookup(&berthd, "x2", "cache")?, Some(vec![y2_x.clone()]));
    let (code, _, err) = run(berthd.docker().args(["network", "connect", "dnsx", "y2"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("already exists in network dnsx"), "{err}");
    run_ok(
        berthd
            .docker()
            .args(["network", "disconnect", "dnsx", "y2"]),
    )?;
    assert_eq!(lookup(&berthd, "y2", "x1")?, None);
    assert_eq!(lookup(&berthd, "x2", "cache")?, None);
    let (code, _, _) = run(berthd
        .docker()
        .args(["exec", "y2", "ping", "-c", "1", "-W", "2", &x1]))?;
    assert_ne!(code, 0, "reached dnsx after disconnect");
    let links = run_ok(berthd.docker().args(["exec", "y2", "ip", "-o", "link"]))?;
    assert!(!links.contains("eth1"), "{links}");
    // Nor is its CNI attachment (first shown live with eth0's).
    let cached = |berthd: &Berthd| -> Vec<String> {
        std::fs::read_dir(berthd.state().join("networks/cni/results"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let now = cached(&berthd);
    assert!(now.iter().any(|f| f.ends_with("-eth0")), "{now:?}");
    assert!(!now.iter().any(|f| f.ends_with("-eth1")), "{now:?}");
    let (code, _, err) = run(berthd
        .docker()
        .args(["network", "disconnect", "dnsx", "y2"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("is not connected to network dnsx"), "{err}");
    // berth's CLI does the same.
    run_ok(
        berthd
            .berth()?
            .args(["network", "connect", "--alias", "cache2", "dnsx", "y2"]),
    )?;
    assert!(lookup(&berthd, "x2", "cache2")?.is_some());
    run_ok(
        berthd
            .berth()?
            .args(["network", "disconnect", "-f", "dnsx", "y2"]),
    )?;
    assert_eq!(lookup(&berthd, "x2", "cache2")?, None);
    // Other names go to the upstream (the fake one on loopback).
    assert_eq!(
        lookup(&berthd, "x2", "fwd.example")?,
        Some(vec!["192.0.2.55".to_string()])
    );
    assert!(forwarded.load(Ordering::SeqCst) > 0, "not forwarded");
    assert_eq!(lookup(&berthd, "x2", "nothing.example")?, None);

    // Bad input refused with nothing made.
    let (code, _, err) = run(berthd.docker().args([
        "run",
        "--network",
        "dnsx",
        "--dns",
        "nonsense",
        "busybox",
        "true",
    ]))?;
    assert_ne!(code, 0);
    assert!(err.contains("nonsense"), "{err}");
    let (code, _, err) = run(berthd.docker().args([
        "run",
        "--network",
        "host",
        "--dns",
        "127.0.0.9",
        "busybox",
        "true",
    ]))?;
    assert_ne!(code, 0);
    assert!(
        err.contains("conflicting options: dns and the network mode"),
        "{err}"
    );

    // A berthd crash: the server comes back from the records.
    berthd.kill9()?;
    assert_eq!(
        berth_e2e::listening_on_dns(gw_x),
        (false, false),
        "listener outlived berthd"
    );
    berthd.restart()?;
    assert_eq!(lookup(&berthd, "x2", "db")?, Some(vec![x1.clone()]));

    // A stopped container is no longer answered; the last one gone closes the server.
    run_ok(berthd.docker().args(["stop", "-t", "0", "x1"]))?;
    assert_eq!(lookup(&berthd, "x2", "x1")?, None);
    run_ok(berthd.docker().args(["rm", "-f", "x1", "x2", "y1", "y2"]))?;
    assert_eq!(
        berth_e2e::listening_on_dns(gw_x),
        (false, false),
        "listener left on dnsx's gateway"
    );
    assert_eq!(
        berth_e2e::listening_on_dns(Ipv4Addr::new(10, 222, 0, 1)),
        (false, false),
        "listener left on dnsy's gateway"
    );
    assert_eq!(cached(&berthd), Vec::<String>::new());
    run_ok(berthd.docker().args(["network", "rm", "dnsx", "dnsy"]))?;
    berthd.stop()?;
    Ok(())
}
