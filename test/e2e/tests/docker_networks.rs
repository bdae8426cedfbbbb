//! Networks through Debian's docker 20.10 client and berth's CLI: the builtin
//! networks, user bridge networks created, listed with filters, inspected, removed
//! and pruned; bad input (an overlapping subnet, an unknown driver or network, a
//! builtin network removed) refused with nothing made; records kept across a
//! berthd `kill -9`; berth's nft table restored at the next network event after
//! someone deletes or flushes it.

use anyhow::Result;
use berth_e2e::{firewall_listing, require_root, run, run_ok, Berthd};
use serde_json::Value;

/// berthd with a default bridge of its own (the harness gives each daemon one),
/// apart from other tests' daemons.
fn berthd() -> Result<Berthd> {
    Berthd::start()
}

fn names(berthd: &Berthd, filters: &[&str]) -> Result<Vec<String>> {
    let mut cmd = berthd.docker();
    cmd.args(["network", "ls", "--format", "{{.Name}}"]);
    for f in filters {
        cmd.args(["--filter", f]);
    }
    Ok(run_ok(&mut cmd)?.lines().map(str::to_string).collect())
}

fn inspect(berthd: &Berthd, name: &str) -> Result<Value> {
    let out = run_ok(berthd.docker().args(["network", "inspect", name]))?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(v[0].clone())
}

#[test]
fn builtin_and_user_networks() -> Result<()> {
    require_root();
    let mut berthd = berthd()?;
    assert_eq!(names(&berthd, &[])?, ["bridge", "host", "none"]);
    let bridge = inspect(&berthd, "bridge")?;
    assert_eq!(bridge["Driver"], "bridge");
    let subnet = berthd.default_subnet();
    assert_eq!(bridge["IPAM"]["Config"][0]["Subnet"], subnet.as_str());
    assert_eq!(
        bridge["IPAM"]["Config"][0]["Gateway"],
        subnet.replace(".0/24", ".1").as_str()
    );
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.name"],
        berthd.default_bridge().as_str()
    );
    assert_eq!(inspect(&berthd, "none")?["Driver"], "null");

    let id = run_ok(berthd.docker().args([
        "network",
        "create",
        "--subnet",
        "10.214.0.0/16",
        "--gateway",
        "10.214.0.254",
        "--ip-range",
        "10.214.1.0/24",
        "--internal",
        "--label",
        "env=e2e",
        "-o",
        "com.docker.network.bridge.name=bt-e2e-back",
        "backend",
    ]))?;
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let back = inspect(&berthd, &id[..12])?;
    assert_eq!(back["Name"], "backend");
    assert_eq!(back["Id"], id.as_str());
    assert_eq!(back["Scope"], "local");
    assert_eq!(back["Internal"], true);
    assert_eq!(back["Labels"]["env"], "e2e");
    assert_eq!(
        back["IPAM"]["Config"][0],
        serde_json::json!({"Subnet": "10.214.0.0/16", "IPRange": "10.214.1.0/24", "Gateway": "10.214.0.254"})
    );
    assert_eq!(back["Containers"], serde_json::json!({}));
    // A network without --subnet gets one of Docker's pools, not overlapping.
    run_ok(berthd.docker().args(["network", "create", "front"]))?;
    let front = inspect(&berthd, "front")?;
    let subnet = front["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        subnet.starts_with("172.") || subnet.starts_with("192.168."),
        "{subnet}"
    );

    assert_eq!(names(&berthd, &["type=custom"])?, ["backend", "front"]);
    assert_eq!(names(&berthd, &["label=env=e2e"])?, ["backend"]);
    assert_eq!(names(&berthd, &["name=ack"])?, ["backend"]);
    assert_eq!(names(&berthd, &["driver=null"])?, ["none"]);
    let quiet = run_ok(
        berthd
            .docker()
            .args(["network", "ls", "-q", "--filter", "name=backend"]),
    )?;
    assert_eq!(quiet.trim(), &id[..12]);
    // berth's own CLI sees the same.
    let out = run_ok(berthd.berth()?.args(["network", "ls"]))?;
    assert!(out.starts_with("NETWORK ID"), "{out}");
    assert!(out.contains("backend") && out.contains(&id[..12]), "{out}");

    // The records outlive a kill -9.
    berthd.kill9()?;
    berthd.restart()?;
    assert_eq!(inspect(&berthd, "backend")?["Id"], id.as_str());
    assert_eq!(
        inspect(&berthd, "bridge")?["IPAM"]["Config"][0]["Subnet"],
        berthd.default_subnet().as_str()
    );

    let out = run_ok(berthd.docker().args(["network", "rm", "backend"]))?;
    assert_eq!(out.trim(), "backend");
    // `until`: only networks created before; `front` is a second old, not an hour.
    let out = run_ok(
        berthd
            .docker()
            .args(["network", "prune", "-f", "--filter", "until=1h"]),
    )?;
    assert_eq!(out.trim(), "", "{out}");
    assert!(names(&berthd, &[])?.contains(&"front".to_string()));
    let (code, _, err) =
        run(berthd
            .docker()
            .args(["network", "prune", "-f", "--filter", "until=soon"]))?;
    assert!(
        code != 0 && err.contains("invalid filter 'until=soon'"),
        "{err}"
    );
    let out = run_ok(berthd.berth()?.args(["network", "prune", "-f"]))?;
    assert_eq!(out, "Deleted Networks:\nfront\n");
    assert_eq!(names(&berthd, &[])?, ["bridge", "host", "none"]);
    Ok(())
}

#[test]
fn bad_input_is_refused_with_nothing_made() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    run_ok(
        berthd
            .docker()
            .args(["network", "create", "--subnet", "10.215.0.0/16", "one"]),
    )?;
    let refused = |args: &[&str], want: &str| -> Result<()> {
        let mut cmd = berthd.docker();
        cmd.arg("network").args(args);
        let (code, out, err) = run(&mut cmd)?;
        assert_ne!(code, 0, "{args:?} should fail: {out}");
        assert!(err.contains(want), "{args:?}: {err:?} should say {want:?}");
        Ok(())
    };
    refused(
        &["create", "--subnet", "10.215.3.0/24", "two"],
        "Pool overlaps with other one on this address space",
    )?;
    refused(
        &["create", "--subnet", "172.30.0.0/16", "three"],
        "Pool overlaps with other one on this address space",
    )?;
    refused(&["create", "one"], "network with name one already exists")?;
    refused(
        &["create", "-d", "overlay", "ov"],
        "\"overlay\" is not supported",
    )?;
    refused(
        &["create", "--ipv6", "six"],
        "non-overlapping IPv6 address pool",
    )?;
    refused(
        &["create", "-o", "com.docker.network.driver.mtu=1400", "mtu"],
        "com.docker.network.driver.mtu",
    )?;
    refused(
        &[
            "create",
            "--subnet",
            "10.216.0.0/24",
            "--gateway",
            "10.217.0.1",
            "gw",
        ],
        "no matching subnet for gateway",
    )?;
    refused(
        &["create", "--subnet", "10.216.0.5/24", "host-bits"],
        "it should be 10.216.0.0/24",
    )?;
    refused(&["create", "host"], "predefined host network")?;
    refused(&["inspect", "nope"], "No such network: nope")?;
    refused(&["rm", "nope"], "No such network: nope")?;
    refused(
        &["rm", "bridge"],
        "bridge is a pre-defined network and cannot be removed",
    )?;
    refused(&["connect", "one", "x"], "No such container: x")?;
    refused(&["connect", "nope", "x"], "No such")?;
    assert_eq!(names(&berthd, &[])?, ["bridge", "host", "none", "one"]);
    Ok(())
}

/// Host-side traces of berth's networking for this daemon: veths on the test's
/// bridges, host-local leases, the CNI cache, namespace pins, berth's nft table and
/// the iptables rules naming the test's subnets (`prefixes`: the CNI plugins'
/// masquerade, firewall and DNAT rules of its containers).
fn traces(berthd: &Berthd, bridges: &[&str], prefixes: &[&str]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for b in bridges {
        let out =
            run_ok(std::process::Command::new("ip").args(["-o", "link", "show", "master", b]))
                .unwrap_or_default();
        found.extend(out.lines().map(|l| format!("veth on {b}: {l}")));
    }
    let state = berthd.state().join("networks");
    for sub in ["cni/results", "netns"] {
        if let Ok(entries) = std::fs::read_dir(state.join(sub)) {
            found.extend(
                entries
                    .flatten()
                    .map(|e| format!("{sub}: {:?}", e.file_name())),
            );
        }
    }
    if let Ok(nets) = std::fs::read_dir(state.join("ipam")) {
        for net in nets.flatten() {
            for lease in std::fs::read_dir(net.path())?.flatten() {
                let name = lease.file_name().to_string_lossy().into_owned();
                // host-local keeps its lock and last-reserved markers besides leases.
                if name.parse::<std::net::Ipv4Addr>().is_ok() {
                    found.push(format!("lease: {name}"));
                }
            }
        }
    }
    // The CNI plugins' per-container rules (masquerade, firewall) name its address.
    let rules = firewall_listing("iptables-save", &[])?.unwrap_or_default();
    found.extend(
        rules
            .lines()
            .filter(|l| l.starts_with("-A") && prefixes.iter().any(|p| l.contains(p)))
            .map(|l| format!("iptables: {l}")),
    );
    let tables = firewall_listing("nft", &["list", "tables"])?.unwrap_or_default();
    let ours = tables_of(berthd, &tables);
    found.extend(ours.into_iter().map(|t| format!("nft: {t}")));
    Ok(found)
}

fn table_name(berthd: &Berthd) -> String {
    format!("table inet {}", berth_e2e::nft_table_of(&berthd.root()))
}

/// This daemon's nft table in a `nft list tables` listing: berth names it after an
/// FNV-1a hash of the root (engine/src/networks/firewall.rs).
fn tables_of(berthd: &Berthd, listing: &str) -> Vec<String> {
    let ours = table_name(berthd);
    listing
        .lines()
        .filter(|l| l.trim() == ours)
        .map(str::to_string)
        .collect()
}

/// Removes the test's bridges and this daemon's nft table when the test ends early
/// (a passing test has removed them through berth already).
struct HostCleanup {
    bridges: Vec<&'static str>,
    table: String,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        for b in &self.bridges {
            if std::path::Path::new("/sys/class/net").join(b).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", b])
                    .status();
            }
        }
        if let Some(name) = self.table.strip_prefix("table inet ") {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "inet", name])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn ip_of(berthd: &Berthd, name: &str, network: &str) -> Result<String> {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    Ok(
        run_ok(berthd.docker().args(["inspect", "--format", &format, name]))?
            .trim()
            .to_string(),
    )
}

/// `docker exec <container> <cmd>`'s output, run up to three times until `done` says
/// it is what was expected (the last output either way).
fn exec_until(
    berthd: &Berthd,
    container: &str,
    cmd: &[&str],
    done: impl Fn(&str) -> bool,
) -> Result<String> {
    let mut out = String::new();
    for attempt in 0..3 {
        let (_, stdout, stderr) = run(berthd.docker().arg("exec").arg(container).args(cmd))?;
        out = stdout;
        if done(&out) {
            break;
        }
        eprintln!("exec {container} {cmd:?} (attempt {attempt}): {out:?} {stderr:?}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    Ok(out)
}

#[test]
fn containers_on_user_networks_reach_each_other_only() -> Result<()> {
    require_root();
    let mut berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    let tables_before = firewall_listing("nft", &["list", "tables"])?.unwrap_or_default();
    let ours_before = tables_of(&berthd, &tables_before);
    let _cleanup = HostCleanup {
        bridges: vec!["bt-e2e-a", "bt-e2e-b"],
        table: tables_of(&berthd, &format!("{}\n", table_name(&berthd)))
            .pop()
            .unwrap_or_default(),
    };
    for (name, subnet, bridge) in [
        ("neta", "10.218.0.0/24", "bt-e2e-a"),
        ("netb", "10.219.0.0/24", "bt-e2e-b"),
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
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "neta",
        "--network-alias",
        "web",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]))?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "a2",
        "--network",
        "neta",
        "--ip",
        "10.218.0.77",
        "busybox",
        "sleep",
        "300",
    ]))?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "b1",
        "--network",
        "netb",
        "busybox",
        "sleep",
        "300",
    ]))?;
    let a1 = ip_of(&berthd, "a1", "neta")?;
    assert!(a1.starts_with("10.218.0."), "{a1}");
    assert_eq!(ip_of(&berthd, "a2", "neta")?, "10.218.0.77");
    let b1 = ip_of(&berthd, "b1", "netb")?;
    assert!(b1.starts_with("10.219.0."), "{b1}");
    let a2_json: Value = serde_json::from_str(&run_ok(berthd.docker().args(["inspect", "a2"]))?)?;
    let ep = &a2_json[0]["NetworkSettings"]["Networks"]["neta"];
    assert_eq!(ep["Gateway"], "10.218.0.1");
    assert_eq!(ep["IPPrefixLen"], 24);
    assert!(
        ep["MacAddress"].as_str().is_some_and(|m| m.len() == 17),
        "{ep}"
    );
    let alias: Value = serde_json::from_str(&run_ok(berthd.docker().args([
        "inspect",
        "--format",
        "{{json (index .NetworkSettings.Networks \"neta\").Aliases}}",
        "a1",
    ]))?)?;
    assert!(
        alias
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "web")),
        "{alias}"
    );

    // Same network: reached by address (ping and HTTP; a lost packet is sent again).
    let out = exec_until(&berthd, "a2", &["ping", "-c", "1", "-W", "3", &a1], |o| {
        o.contains("1 packets received")
    })?;
    assert!(out.contains("1 packets received"), "{out}");
    // (Debian's static busybox wget crashes in its resolver; nc speaks HTTP here.)
    let get = format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {a1} 80");
    let a1_hostname = run_ok(berthd.docker().args(["exec", "a1", "hostname"]))?;
    let out = exec_until(&berthd, "a2", &["sh", "-c", &get], |o| {
        o.starts_with("HTTP/1.")
    })?;
    assert!(
        out.starts_with("HTTP/1.") && out.ends_with(&a1_hostname),
        "{out:?}"
    );
    // Another network: not reached.
    let (code, _, _) = run(berthd
        .docker()
        .args(["exec", "b1", "ping", "-c", "1", "-W", "2", &a1]))?;
    assert_ne!(code, 0, "netb reached neta");
    let (_, out, _) = run(berthd.docker().args(["exec", "b1", "sh", "-c", &get]))?;
    assert!(
        !out.contains("HTTP/1."),
        "netb reached neta's httpd: {out:?}"
    );
    // The files dockerd writes.
    let hosts = run_ok(berthd.docker().args(["exec", "a2", "cat", "/etc/hosts"]))?;
    let hostname = run_ok(berthd.docker().args(["exec", "a2", "hostname"]))?;
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(
        hosts.ends_with(&format!("10.218.0.77\t{}\n", hostname.trim())),
        "{hosts}"
    );
    assert_eq!(
        run_ok(berthd.docker().args(["exec", "a2", "cat", "/etc/hostname"]))?,
        hostname
    );
    // Network inspect lists the attached containers; rm is refused while they are.
    let neta = inspect(&berthd, "neta")?;
    assert_eq!(
        neta["Containers"].as_object().map(|m| m.len()),
        Some(2),
        "{neta}"
    );
    let (code, _, err) = run(berthd.docker().args(["network", "rm", "neta"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("has active endpoints"), "{err}");
    // Unknown network: refused, nothing made.
    let (code, _, err) =
        run(berthd
            .docker()
            .args(["run", "--network", "nope", "busybox", "true"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("network nope not found"), "{err}");

    // The leak probe sees the live attachments first.
    let live = traces(
        &berthd,
        &["bt-e2e-a", "bt-e2e-b"],
        &["10.218.0.", "10.219.0."],
    )?;
    let count = |what: &str| live.iter().filter(|t| t.starts_with(what)).count();
    assert_eq!(count("veth on"), 3, "{live:?}");
    assert_eq!(count("lease:"), 3, "{live:?}");
    assert_eq!(count("netns:"), 3, "{live:?}");
    assert!(ours_before.is_empty(), "{ours_before:?}");
    assert_eq!(count("nft:"), 1, "{live:?}");
    assert!(count("iptables:") >= 3, "{live:?}");

    // berthd killed with SIGKILL, and b1's process while berthd is down: the
    // restart's reconcile learns the exit and detaches b1; removals detach the rest.
    let b1_pid = run_ok(
        berthd
            .docker()
            .args(["inspect", "--format", "{{.State.Pid}}", "b1"]),
    )?;
    berthd.kill9()?;
    run_ok(std::process::Command::new("kill").args(["-9", b1_pid.trim()]))?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    berthd.restart()?;
    // Only a1's and a2's attachments are left.
    let after = traces(
        &berthd,
        &["bt-e2e-a", "bt-e2e-b"],
        &["10.218.0.", "10.219.0."],
    )?;
    let count = |what: &str| after.iter().filter(|t| t.starts_with(what)).count();
    for what in ["veth on bt-e2e-a", "lease:", "netns:", "cni/results:"] {
        assert_eq!(count(what), 2, "{what}: {after:?}");
    }
    assert_eq!(count("veth on bt-e2e-b"), 0, "{after:?}");
    assert!(!after.iter().any(|t| t.contains("10.219.")), "{after:?}");
    assert_eq!(
        run_ok(
            berthd
                .docker()
                .args(["inspect", "--format", "{{.State.Status}}", "b1"])
        )?
        .trim(),
        "exited"
    );
    run_ok(berthd.docker().args(["stop", "-t", "0", "a2"]))?;
    let after_stop = traces(&berthd, &["bt-e2e-a"], &["10.218.0."])?;
    assert_eq!(
        after_stop.iter().filter(|t| t.starts_with("veth")).count(),
        1,
        "a stopped container keeps its veth: {after_stop:?}"
    );
    run_ok(berthd.docker().args(["rm", "-f", "a1", "a2"]))?;
    run_ok(berthd.docker().args(["rm", "b1"]))?;
    run_ok(berthd.docker().args(["network", "rm", "neta", "netb"]))?;
    let left = traces(
        &berthd,
        &["bt-e2e-a", "bt-e2e-b"],
        &["10.218.0.", "10.219.0."],
    )?;
    assert!(left.is_empty(), "left behind: {left:?}");
    for b in ["bt-e2e-a", "bt-e2e-b"] {
        assert!(
            !std::path::Path::new("/sys/class/net").join(b).exists(),
            "bridge {b} left"
        );
    }
    Ok(())
}

/// An HTTP GET of /hostname from the host; the body, or None when nothing answers.
fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    for _ in 0..20 {
        if let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        {
            s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
                .ok()?;
            s.write_all(b"GET /hostname HTTP/1.0\r\n\r\n").ok()?;
            let mut out = String::new();
            if s.read_to_string(&mut out).is_ok() && out.starts_with("HTTP/1.") {
                return Some(out);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    None
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[test]
fn published_ports_answer_from_the_host() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    let _cleanup = HostCleanup {
        bridges: vec!["bt-e2e-pub"],
        table: table_name(&berthd),
    };
    run_ok(berthd.docker().args([
        "network",
        "create",
        "--subnet",
        "10.220.0.0/24",
        "-o",
        "com.docker.network.bridge.name=bt-e2e-pub",
        "pub",
    ]))?;
    let port = free_port()?;
    let httpd = ["httpd", "-f", "-p", "80", "-h", "/etc"];
    let mut cmd = berthd.docker();
    cmd.args(["run", "-d", "--name", "web1", "--network", "pub", "-p"])
        .arg(format!("127.0.0.1:{port}:80"))
        .arg("busybox")
        .args(httpd);
    run_ok(&mut cmd)?;
    let hostname = run_ok(berthd.docker().args(["exec", "web1", "hostname"]))?;
    let body = http_get(&format!("127.0.0.1:{port}"));
    assert!(
        body.as_deref().is_some_and(|b| b.ends_with(&hostname)),
        "{body:?}"
    );
    let out = run_ok(berthd.docker().args(["port", "web1"]))?;
    assert_eq!(out.trim(), format!("80/tcp -> 127.0.0.1:{port}"));
    assert_eq!(run_ok(berthd.berth()?.args(["port", "web1"]))?, out);
    assert_eq!(
        run_ok(berthd.berth()?.args(["port", "web1", "80"]))?.trim(),
        format!("127.0.0.1:{port}")
    );
    let out =
        run_ok(
            berthd
                .docker()
                .args(["ps", "--format", "{{.Ports}}", "--filter", "name=web1"]),
        )?;
    assert_eq!(out.trim(), format!("127.0.0.1:{port}->80/tcp"));

    // -P: every exposed port on a random host port.
    run_ok(
        berthd
            .docker()
            .args([
                "run",
                "-d",
                "--name",
                "web2",
                "--network",
                "pub",
                "--expose",
                "80",
                "-P",
                "busybox",
            ])
            .args(httpd),
    )?;
    let out = run_ok(berthd.docker().args(["port", "web2", "80/tcp"]))?;
    let random: u16 = out
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    assert!(random > 0, "{out:?}");
    let hostname2 = run_ok(berthd.docker().args(["exec", "web2", "hostname"]))?;
    let body = http_get(&format!("127.0.0.1:{random}"));
    assert!(
        body.as_deref().is_some_and(|b| b.ends_with(&hostname2)),
        "{body:?}"
    );

    // The same host port again: refused at start in Docker's words, nothing attached.
    let mut cmd = berthd.docker();
    cmd.args(["run", "-d", "--name", "web3", "--network", "pub", "-p"])
        .arg(format!("127.0.0.1:{port}:80"))
        .arg("busybox")
        .args(httpd);
    let (code, _, err) = run(&mut cmd)?;
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "Bind for 127.0.0.1:{port} failed: port is already allocated"
        )),
        "{err}"
    );
    let netns = std::fs::read_dir(berthd.state().join("networks/netns"))?.count();
    assert_eq!(netns, 2, "the refused start left a namespace");

    let live = firewall_listing("iptables-save", &[])?.unwrap_or_default();
    assert!(
        live.lines().any(|l| l.starts_with("-A")
            && l.contains("10.220.0.")
            && l.contains(&port.to_string())),
        "the probe does not see the live DNAT rule: {live}"
    );
    run_ok(berthd.docker().args(["rm", "-f", "web1", "web2", "web3"]))?;
    assert!(
        http_get(&format!("127.0.0.1:{port}")).is_none(),
        "still published"
    );
    let rules = firewall_listing("iptables-save", &[])?.unwrap_or_default();
    assert!(
        !rules
            .lines()
            .any(|l| l.starts_with("-A") && l.contains("10.220.0.")),
        "rules left: {rules}"
    );
    run_ok(berthd.docker().args(["network", "rm", "pub"]))?;
    Ok(())
}

#[test]
fn internal_networks_have_no_way_out() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    let _cleanup = HostCleanup {
        bridges: vec!["bt-e2e-o", "bt-e2e-c"],
        table: table_name(&berthd),
    };
    for (name, subnet, bridge, internal) in [
        ("open", "10.221.0.0/24", "bt-e2e-o", false),
        ("closed", "10.222.0.0/24", "bt-e2e-c", true),
    ] {
        let mut cmd = berthd.docker();
        cmd.args(["network", "create", "--subnet", subnet, "-o"])
            .arg(format!("com.docker.network.bridge.name={bridge}"));
        if internal {
            cmd.arg("--internal");
        }
        run_ok(cmd.arg(name))?;
        run_ok(berthd.docker().args([
            "run",
            "-d",
            "--name",
            &format!("c-{name}"),
            "--network",
            name,
            "busybox",
            "sleep",
            "300",
        ]))?;
    }
    // The open network routes out through its gateway: the other bridge's address
    // (the host's, on a bridge of this test) answers.
    let out = run_ok(berthd.docker().args([
        "exec",
        "c-open",
        "ping",
        "-c",
        "1",
        "-W",
        "3",
        "10.222.0.1",
    ]))?;
    assert!(out.contains("1 packets received"), "{out}");
    let routes = run_ok(berthd.docker().args(["exec", "c-open", "ip", "route"]))?;
    assert!(routes.contains("default via 10.221.0.1"), "{routes}");
    // The internal one has no default route and reaches nothing beyond its subnet.
    let routes = run_ok(berthd.docker().args(["exec", "c-closed", "ip", "route"]))?;
    assert!(!routes.contains("default"), "{routes}");
    let (code, out, _) = run(berthd.docker().args([
        "exec",
        "c-closed",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "10.221.0.1",
    ]))?;
    assert_ne!(code, 0, "{out}");
    assert_eq!(inspect(&berthd, "closed")?["Internal"], true);
    run_ok(berthd.docker().args(["rm", "-f", "c-open", "c-closed"]))?;
    run_ok(berthd.docker().args(["network", "rm", "open", "closed"]))?;
    Ok(())
}

#[test]
fn a_restart_policy_brings_the_container_back_on_its_network() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    let _cleanup = HostCleanup {
        bridges: vec!["bt-e2e-rr"],
        table: table_name(&berthd),
    };
    run_ok(berthd.docker().args([
        "network",
        "create",
        "--subnet",
        "10.225.0.0/24",
        "-o",
        "com.docker.network.bridge.name=bt-e2e-rr",
        "rrn",
    ]))?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--restart",
        "always",
        "--network",
        "rrn",
        "--ip",
        "10.225.0.9",
        "--name",
        "rr",
        "busybox",
        "sleep",
        "300",
    ]))?;
    let pid = run_ok(
        berthd
            .docker()
            .args(["inspect", "--format", "{{.State.Pid}}", "rr"]),
    )?;
    run_ok(std::process::Command::new("kill").args(["-9", pid.trim()]))?;
    let mut state = String::new();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        state = run_ok(berthd.docker().args([
            "inspect",
            "--format",
            "{{.RestartCount}} {{.State.Status}}",
            "rr",
        ]))?;
        if state.trim() == "1 running" {
            break;
        }
    }
    assert_eq!(state.trim(), "1 running");
    assert_eq!(ip_of(&berthd, "rr", "rrn")?, "10.225.0.9");
    let out =
        run_ok(
            berthd
                .docker()
                .args(["exec", "rr", "ping", "-c", "1", "-W", "3", "10.225.0.1"]),
        )?;
    assert!(out.contains("1 packets received"), "{out}");
    run_ok(berthd.docker().args(["rm", "-f", "rr"]))?;
    run_ok(berthd.docker().args(["network", "rm", "rrn"]))?;
    Ok(())
}

#[test]
fn concurrent_runs_and_removals_leave_nothing() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    for (name, subnet, bridge) in [
        ("ca", "10.233.0.0/24", "bt-e2e-ca"),
        ("cb", "10.234.0.0/24", "bt-e2e-cb"),
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
    let _cleanup = HostCleanup {
        bridges: vec!["bt-e2e-ca", "bt-e2e-cb"],
        table: table_name(&berthd),
    };
    let names: Vec<String> = (0..8).map(|i| format!("par{i}")).collect();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let berthd = &berthd;
                s.spawn(move || {
                    let net = if i % 2 == 0 { "ca" } else { "cb" };
                    run_ok(berthd.docker().args([
                        "run",
                        "-d",
                        "--name",
                        name,
                        "--network",
                        net,
                        "-p",
                        "127.0.0.1::80",
                        "busybox",
                        "sleep",
                        "300",
                    ]))
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a run thread panicked"))??;
        }
        Ok(())
    })?;
    let live = traces(
        &berthd,
        &["bt-e2e-ca", "bt-e2e-cb"],
        &["10.233.0.", "10.234.0."],
    )?;
    let count = |what: &str| live.iter().filter(|t| t.starts_with(what)).count();
    assert_eq!(count("veth on"), 8, "{live:?}");
    assert_eq!(count("lease:"), 8, "{live:?}");
    assert_eq!(count("netns:"), 8, "{live:?}");
    assert!(count("iptables:") >= 8, "{live:?}");
    let ports: Vec<String> = names
        .iter()
        .map(|n| run_ok(berthd.docker().args(["port", n, "80"])))
        .collect::<Result<_>>()?;
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 8, "host ports given twice: {ports:?}");
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let berthd = &berthd;
                s.spawn(move || run_ok(berthd.docker().args(["rm", "-f", name])))
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("an rm thread panicked"))??;
        }
        Ok(())
    })?;
    run_ok(berthd.docker().args(["network", "rm", "ca", "cb"]))?;
    let left = traces(
        &berthd,
        &["bt-e2e-ca", "bt-e2e-cb"],
        &["10.233.0.", "10.234.0."],
    )?;
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

/// A top-level `NetworkSettings` field of a container, as the docker CLI shows it.
fn setting(berthd: &Berthd, name: &str, field: &str) -> Result<String> {
    let format = format!("{{{{.NetworkSettings.{field}}}}}");
    Ok(
        run_ok(berthd.docker().args(["inspect", "--format", &format, name]))?
            .trim()
            .to_string(),
    )
}

/// The host's resolv.conf as dockerd gives it to a default-bridge container: the
/// host's resolvers, loopback ones left out.
fn expected_resolv_conf() -> String {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let mut f = l.split_whitespace();
            !(f.next() == Some("nameserver")
                && f.next()
                    .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn containers_without_network_join_the_default_bridge() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    let bridge = berthd.default_bridge();
    let subnet = berthd.default_subnet();
    let prefix = subnet.trim_end_matches("0/24").to_string();
    assert!(prefix.starts_with("172."), "{subnet}");

    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "c1", "busybox", "sleep", "600"]),
    )?;
    let port = free_port()?;
    let mut cmd = berthd.docker();
    cmd.args(["run", "-d", "--name", "web", "-p"])
        .arg(format!("127.0.0.1:{port}:80"))
        .args(["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    run_ok(&mut cmd)?;

    // dockerd's top-level fields are the default bridge endpoint's.
    let ip = setting(&berthd, "c1", "IPAddress")?;
    assert!(ip.starts_with(&prefix), "{ip} not in {subnet}");
    assert_eq!(ip, ip_of(&berthd, "c1", "bridge")?);
    assert_eq!(setting(&berthd, "c1", "Gateway")?, format!("{prefix}1"));
    assert_eq!(setting(&berthd, "c1", "IPPrefixLen")?, "24");
    let mac = setting(&berthd, "c1", "MacAddress")?;
    assert_eq!(mac.len(), 17, "{mac:?}");
    assert_eq!(
        run_ok(
            berthd
                .docker()
                .args(["inspect", "--format", "{{.HostConfig.NetworkMode}}", "c1"])
        )?
        .trim(),
        "default"
    );
    // The address is on the container's eth0 and the veth on the daemon's bridge.
    let addr = run_ok(
        berthd
            .docker()
            .args(["exec", "c1", "ip", "-o", "-4", "addr", "show", "eth0"]),
    )?;
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    let veths =
        run_ok(std::process::Command::new("ip").args(["-o", "link", "show", "master", &bridge]))?;
    assert_eq!(veths.lines().count(), 2, "{veths}");

    // /etc/hosts, /etc/hostname and /etc/resolv.conf as dockerd writes them.
    let hostname = run_ok(berthd.docker().args(["exec", "c1", "hostname"]))?;
    let hostname = hostname.trim();
    assert_eq!(hostname.len(), 12, "{hostname}");
    let hosts = run_ok(berthd.docker().args(["exec", "c1", "cat", "/etc/hosts"]))?;
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.ends_with(&format!("{ip}\t{hostname}\n")), "{hosts}");
    assert_eq!(
        run_ok(berthd.docker().args(["exec", "c1", "cat", "/etc/hostname"]))?,
        format!("{hostname}\n")
    );
    assert_eq!(
        run_ok(
            berthd
                .docker()
                .args(["exec", "c1", "cat", "/etc/resolv.conf"])
        )?,
        expected_resolv_conf()
    );

    // Another default-bridge container by address, and -p from the host.
    let web_ip = setting(&berthd, "web", "IPAddress")?;
    assert!(web_ip.starts_with(&prefix) && web_ip != ip, "{web_ip}");
    let web_host = run_ok(berthd.docker().args(["exec", "web", "hostname"]))?;
    run_ok(
        berthd
            .docker()
            .args(["exec", "c1", "ping", "-c", "1", "-W", "3", &web_ip]),
    )?;
    // (Debian's static busybox wget crashes in its resolver; nc speaks HTTP here.)
    let get = format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {web_ip} 80");
    let got = run_ok(berthd.docker().args(["exec", "c1", "sh", "-c", &get]))?;
    assert!(got.ends_with(&web_host), "{got}");
    let body = http_get(&format!("127.0.0.1:{port}"));
    assert!(
        body.as_deref().is_some_and(|b| b.ends_with(&web_host)),
        "{body:?}"
    );
    assert_eq!(
        run_ok(berthd.docker().args(["port", "web"]))?.trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    // Outbound through masquerading: the network's rule in berth's nft table (one
    // per network, not a chain per container).
    let table = table_name(&berthd);
    let table = table.trim_start_matches("table inet ");
    let nat = firewall_listing("nft", &["list", "table", "inet", table])?.unwrap_or_default();
    let subnet = berthd.default_subnet();
    assert!(
        nat.lines()
            .any(|l| l.contains(&format!("ip saddr {subnet} "))
                && l.trim_end().ends_with("masquerade")),
        "no masquerade rule for {subnet} ({ip}): {nat}"
    );

    // A --rm run gets an address too and leaves nothing.
    let out = run_ok(berthd.docker().args([
        "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
    ]))?;
    assert!(out.contains(&prefix), "{out}");

    // Bad input in Docker's words (the docker CLI drops --ip without a user network,
    // so the API is asked directly).
    let body = format!(
        r#"{{"Image": "busybox", "Cmd": ["true"], "HostConfig": {{"NetworkMode": "bridge"}},
            "NetworkingConfig": {{"EndpointsConfig": {{"bridge": {{"IPAMConfig": {{"IPv4Address": "{prefix}99"}}}}}}}}}}"#
    );
    let out = run_ok(std::process::Command::new("curl").args([
        "-s",
        "-w",
        " %{http_code}",
        "--unix-socket",
        &berthd.docker_socket().to_string_lossy(),
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        "http://localhost/v1.41/containers/create",
    ]))?;
    assert!(
        out.contains("user specified IP address is supported on user defined networks only")
            && out.ends_with(" 400"),
        "{out}"
    );

    let live = traces(&berthd, &[&bridge], &[&prefix])?;
    assert!(
        live.iter().any(|t| t.contains("lease")),
        "the probe sees no live lease: {live:?}"
    );
    run_ok(berthd.docker().args(["rm", "-f", "c1", "web"]))?;
    let mut left = traces(&berthd, &[&bridge], &[&prefix])?;
    // berth's nft table stays while the default bridge exists (it goes with it).
    left.retain(|t| !t.starts_with("nft:"));
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        http_get(&format!("127.0.0.1:{port}")).is_none(),
        "still published"
    );

    // The harness removes the daemon's bridge when it goes.
    drop(berthd);
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists(),
        "bridge {bridge} left"
    );
    Ok(())
}

#[test]
fn add_host_hostname_and_domainname_in_etc_files() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    let gateway = berthd.default_subnet().replace(".0/24", ".1");
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "--add-host",
        "db:192.0.2.9",
        "--add-host",
        "gw:host-gateway",
        "--hostname",
        "web",
        "--domainname",
        "example.org",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; echo --; cat /etc/hostname; hostname; ip -o -4 addr show eth0",
    ]))?;
    let (hosts, rest) = out.split_once("--\n").unwrap_or((&out, ""));
    let ip = rest
        .split_whitespace()
        .find_map(|w| w.strip_suffix("/24"))
        .unwrap_or_default();
    assert!(!ip.is_empty(), "{out}");
    assert!(
        hosts.ends_with(&format!(
            "ff02::2\tip6-allrouters\n192.0.2.9\tdb\n{gateway}\tgw\n{ip}\tweb.example.org web\n"
        )),
        "{hosts}"
    );
    assert!(rest.starts_with("web\nweb\n"), "{rest}");

    // Bad entries are refused by name.
    let (code, _, err) = run(berthd.docker().args([
        "run",
        "--rm",
        "--add-host",
        "db:not-an-ip",
        "busybox",
        "true",
    ]))?;
    assert_ne!(code, 0);
    assert!(err.contains("add-host"), "{err}");
    Ok(())
}

#[test]
fn network_container_shares_the_namespace() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    // Docker's errors: an unknown container, a stopped one, conflicting options.
    let (code, _, err) = run(berthd.docker().args([
        "run",
        "--rm",
        "--network",
        "container:nosuch",
        "busybox",
        "true",
    ]))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container: nosuch"), "{err}");
    run_ok(
        berthd
            .docker()
            .args(["create", "--name", "stopped", "busybox", "sleep", "600"]),
    )?;
    let (code, _, err) = run(berthd.docker().args([
        "run",
        "--rm",
        "--network",
        "container:stopped",
        "busybox",
        "true",
    ]))?;
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot join network of a non running container"),
        "{err}"
    );
    // As dockerd answers it: a conflict (409), not a bad request.
    run_ok(berthd.docker().args([
        "create",
        "--name",
        "joiner",
        "--network",
        "container:stopped",
        "busybox",
        "true",
    ]))?;
    let sock = berthd.docker_socket();
    let (_, status, _) = run(std::process::Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--unix-socket",
        &sock.to_string_lossy(),
        "-X",
        "POST",
        "http://localhost/v1.41/containers/joiner/start",
    ]))?;
    assert_eq!(status, "409");
    run_ok(berthd.docker().args(["rm", "joiner"]))?;
    let (code, _, err) = run(berthd.docker().args([
        "run",
        "--rm",
        "--network",
        "container:stopped",
        "--hostname",
        "x",
        "busybox",
        "true",
    ]))?;
    assert_ne!(code, 0);
    assert!(
        err.contains("conflicting options: hostname and the network mode"),
        "{err}"
    );

    let port = free_port()?;
    let mut cmd = berthd.docker();
    cmd.args(["run", "-d", "--name", "web", "-p"])
        .arg(format!("127.0.0.1:{port}:80"))
        .args(["busybox", "sleep", "600"]);
    run_ok(&mut cmd)?;
    let ip = setting(&berthd, "web", "IPAddress")?;
    let web_host = run_ok(berthd.docker().args(["exec", "web", "hostname"]))?;
    // The sidecar sees web's interfaces and address, its hostname and /etc/hosts, and
    // what it serves is published through web's port.
    let sidecar = run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "side",
        "--network",
        "container:web",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]))?;
    assert_eq!(sidecar.trim().len(), 64, "{sidecar}");
    let links = |name: &str| -> Result<String> {
        run_ok(
            berthd
                .docker()
                .args(["exec", name, "ip", "-o", "-4", "addr"]),
        )
    };
    let side_links = links("side")?;
    assert_eq!(side_links, links("web")?);
    assert!(side_links.contains(&format!("{ip}/24")), "{side_links}");
    assert_eq!(
        run_ok(berthd.docker().args(["exec", "side", "hostname"]))?,
        web_host
    );
    assert_eq!(
        run_ok(berthd.docker().args(["exec", "side", "cat", "/etc/hosts"]))?,
        run_ok(berthd.docker().args(["exec", "web", "cat", "/etc/hosts"]))?
    );
    let body = http_get(&format!("127.0.0.1:{port}"));
    assert!(
        body.as_deref().is_some_and(|b| b.ends_with(&web_host)),
        "{body:?}"
    );
    // It has no endpoint of its own.
    assert_eq!(setting(&berthd, "side", "IPAddress")?, "");
    let side_ns = run_ok(
        berthd
            .docker()
            .args(["exec", "side", "readlink", "/proc/self/ns/net"]),
    )?;
    let web_ns = run_ok(
        berthd
            .docker()
            .args(["exec", "web", "readlink", "/proc/self/ns/net"]),
    )?;
    assert_eq!(side_ns, web_ns);

    // --network host is the host's namespace; none is one of its own, loopback only.
    let host_ns = std::fs::read_link("/proc/self/ns/net")?;
    let ns_of = |mode: &str| -> Result<String> {
        run_ok(berthd.docker().args([
            "run",
            "--rm",
            "--network",
            mode,
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/net; ls /sys/class/net",
        ]))
    };
    let host = ns_of("host")?;
    assert!(
        host.starts_with(&format!("{}\n", host_ns.display())),
        "{host}"
    );
    let none = ns_of("none")?;
    assert!(!none.contains(&host_ns.display().to_string()), "{none}");
    assert!(none.ends_with("]\nlo\n"), "{none}");
    run_ok(berthd.docker().args(["rm", "-f", "side", "web", "stopped"]))?;
    Ok(())
}

/// berthd's nft table as `nft list` prints it; None when there is no such table.
fn table_rules(berthd: &Berthd) -> Result<Option<String>> {
    let table = table_name(berthd);
    let name = table.trim_start_matches("table inet ");
    firewall_listing("nft", &["list", "table", "inet", name])
}

#[test]
fn an_externally_deleted_or_flushed_table_comes_back() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    berthd.import_busybox("busybox")?;
    let _cleanup = HostCleanup {
        bridges: vec![],
        table: table_name(&berthd),
    };
    let masq = format!("ip saddr {} ", berthd.default_subnet());
    let has_masq = |rules: &Option<String>| {
        rules.as_deref().is_some_and(|r| {
            r.lines()
                .any(|l| l.contains(&masq) && l.trim_end().ends_with("masquerade"))
        })
    };
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "c1", "busybox", "sleep", "600"]),
    )?;
    let rules = table_rules(&berthd)?;
    assert!(has_masq(&rules), "{rules:?}");

    // Deleted behind berth's back: the next start (one publishing a port) brings it
    // back, and the port answers through portmap's DNAT.
    let table = table_name(&berthd);
    let name = table.trim_start_matches("table inet ").to_string();
    run_ok(std::process::Command::new("nft").args(["delete", "table", "inet", &name]))?;
    assert_eq!(table_rules(&berthd)?, None);
    let port = free_port()?;
    let mut cmd = berthd.docker();
    cmd.args(["run", "-d", "--name", "web", "-p"])
        .arg(format!("127.0.0.1:{port}:80"))
        .args(["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    run_ok(&mut cmd)?;
    let rules = table_rules(&berthd)?;
    assert!(has_masq(&rules), "not restored at the start: {rules:?}");
    let web_ip = setting(&berthd, "web", "IPAddress")?;
    let live = firewall_listing("iptables-save", &[])?.unwrap_or_default();
    assert!(
        live.lines().any(|l| l.starts_with("-A")
            && l.contains("DNAT")
            && l.contains(&web_ip)
            && l.contains(&port.to_string())),
        "no DNAT rule for {web_ip} on port {port}: {live}"
    );
    let web_host = run_ok(berthd.docker().args(["exec", "web", "hostname"]))?;
    let body = http_get(&format!("127.0.0.1:{port}"));
    assert!(
        body.as_deref().is_some_and(|b| b.ends_with(&web_host)),
        "{body:?}"
    );

    // Flushed (chains kept, rules gone): a stop brings the rules back.
    run_ok(std::process::Command::new("nft").args(["flush", "table", "inet", &name]))?;
    assert!(!has_masq(&table_rules(&berthd)?));
    run_ok(berthd.docker().args(["stop", "-t", "1", "c1"]))?;
    // (The stop's network teardown, and its sync, may end just after the stop.)
    let mut rules = table_rules(&berthd)?;
    for _ in 0..25 {
        if has_masq(&rules) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        rules = table_rules(&berthd)?;
    }
    assert!(
        has_masq(&rules),
        "not restored at the stop: {rules:?}\nberthd's log:\n{}",
        berthd.log()
    );
    run_ok(berthd.docker().args(["rm", "-f", "c1", "web"]))?;
    Ok(())
}
