//! IPv6 user networks through Debian's docker 20.10 CLI and the Python SDK against a
//! private berthd: `network create --ipv6 --subnet <v6> --subnet <v4>`, containers
//! with both addresses (inspect's `GlobalIPv6Address`, `IPv6Gateway`, network
//! inspect's `IPv6Address`), the gateway on the bridge, ping6 and HTTP over IPv6
//! between containers, AAAA answers of the embedded DNS server, `--ip6` on run and on
//! `network connect`, /etc/hosts' IPv6 line, `--internal` without an IPv6 route, bad
//! input in Docker's words, and nothing left afterwards (addresses, bridges, leases,
//! nft rules). Also: `network connect` to the default bridge, stable `EndpointID`s,
//! `--add-host` with `--network host` and `none`.

use std::process::Command;

use anyhow::Result;
use berth_e2e::{firewall_listing, require_root, run, run_ok, Berthd, BridgeGuard};
use serde_json::Value;

const BRIDGES: [&str; 4] = ["bt-v6-a", "bt-v6-int", "bt-v6-sdk", "bt-v6-u"];

/// Why this host cannot run the IPv6 cases, if it cannot.
fn no_ipv6() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        return Some("the kernel has no IPv6 (/proc/net/if_inet6 is missing)".into());
    }
    if read("/proc/sys/net/ipv6/conf/all/disable_ipv6").as_deref() == Some("1") {
        return Some("IPv6 is disabled (net.ipv6.conf.all.disable_ipv6=1)".into());
    }
    let inherit = read("/proc/sys/net/core/devconf_inherit_init_net").unwrap_or_default();
    let disabled = read("/proc/sys/net/ipv6/conf/default/disable_ipv6").unwrap_or_default();
    (inherit != "0" && !inherit.is_empty() && disabled == "1")
        .then(|| "new network namespaces inherit net.ipv6.conf.default.disable_ipv6=1".into())
}

fn inspect(berthd: &Berthd, what: &[&str]) -> Result<Value> {
    let out = run_ok(berthd.docker().args(what))?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(v[0].clone())
}

fn refused(berthd: &Berthd, args: &[&str], want: &str) -> Result<()> {
    let (code, out, err) = run(berthd.docker().args(args))?;
    assert_ne!(code, 0, "{args:?} should fail: {out}");
    assert!(err.contains(want), "{args:?}: {err:?} should say {want:?}");
    Ok(())
}

/// Runs `cmd` in container `ct` until it succeeds (IPv6 addresses wait for duplicate
/// address detection); its last output.
fn exec_until(berthd: &Berthd, ct: &str, cmd: &[&str]) -> Result<String> {
    let mut last = String::new();
    for _ in 0..30 {
        let (code, out, err) = run(berthd.docker().arg("exec").arg(ct).args(cmd))?;
        if code == 0 {
            return Ok(out);
        }
        last = format!("{out}{err}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let shown = |c: &mut Command| {
        run(c)
            .map(|(_, out, err)| format!("{out}{err}"))
            .unwrap_or_default()
    };
    let rules = shown(Command::new("nft").args(["list", "ruleset"]));
    let mut seen = String::new();
    for c in shown(berthd.docker().args(["ps", "--format", "{{.Names}}"])).lines() {
        let addrs = shown(berthd.docker().args([
            "exec",
            c,
            "sh",
            "-c",
            "ip -6 addr; ip -6 route; ip -6 neigh; cat /proc/sys/net/ipv6/conf/*/accept_dad",
        ]));
        seen.push_str(&format!("{c}:\n{addrs}\n"));
    }
    let links = shown(
        Command::new("sh").args(["-c", "ip -6 addr show dev bt-v6-a; bridge link; bridge mdb"]),
    );
    anyhow::bail!(
        "{cmd:?} in {ct} kept failing: {last}\ncontainers:\n{seen}\nhost:\n{links}\nnft ruleset:\n{rules}\nberthd's log:\n{}",
        berthd.log()
    )
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn ipv6_networks_with_the_docker_cli() -> Result<()> {
    require_root();
    if let Some(why) = no_ipv6() {
        eprintln!("skipped: IPv6 networks ({why})");
        return Ok(());
    }
    let _bridges = BridgeGuard(&BRIDGES);
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let d = |args: &[&str]| run_ok(berthd.docker().args(args));

    // --ipv6 without an IPv6 subnet: dockerd 20.10's pools are IPv4 only.
    refused(
        &berthd,
        &["network", "create", "--ipv6", "nosub"],
        "could not find an available, non-overlapping IPv6 address pool",
    )?;
    d(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:db8:71::/64",
        "--gateway",
        "fd00:db8:71::fe",
        "--subnet",
        "10.231.0.0/24",
        "-o",
        "com.docker.network.bridge.name=bt-v6-a",
        "v6a",
    ])?;
    let net = inspect(&berthd, &["network", "inspect", "v6a"])?;
    assert_eq!(net["EnableIPv6"], true, "{net}");
    let configs = net["IPAM"]["Config"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        configs.contains(
            &serde_json::json!({"Subnet": "fd00:db8:71::/64", "Gateway": "fd00:db8:71::fe"})
        ),
        "{configs:?}"
    );
    assert!(
        configs.contains(&serde_json::json!({"Subnet": "10.231.0.0/24", "Gateway": "10.231.0.1"})),
        "{configs:?}"
    );

    // Bad input, in Docker's words, with nothing made.
    refused(
        &berthd,
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd00:db8:71:0:1::/80",
            "over",
        ],
        "Pool overlaps with other one on this address space",
    )?;
    refused(
        &berthd,
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd00:db8:72::/64",
            "--gateway",
            "fd00:db8:99::1",
            "badgw",
        ],
        "no matching subnet for gateway fd00:db8:99::1",
    )?;
    let names = d(&["network", "ls", "--format", "{{.Name}}"])?;
    assert!(
        !names.contains("over") && !names.contains("badgw") && !names.contains("nosub"),
        "{names}"
    );

    d(&[
        "run",
        "-d",
        "--name",
        "ct-a",
        "--network",
        "v6a",
        "--network-alias",
        "alpha",
        "busybox",
        "sleep",
        "300",
    ])?;
    d(&[
        "run",
        "-d",
        "--name",
        "ct-b",
        "--hostname",
        "bee",
        "--network",
        "v6a",
        "--ip6",
        "fd00:db8:71::99",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ])?;
    refused(
        &berthd,
        &[
            "run",
            "--rm",
            "--network",
            "v6a",
            "--ip6",
            "fd00:db8:5555::5",
            "busybox",
            "true",
        ],
        "It does not belong to any of this network's subnets",
    )?;
    refused(
        &berthd,
        &["run", "--rm", "-p", "[::1]:18099:80", "busybox", "true"],
        "IPv6 host address",
    )?;

    let a = inspect(&berthd, &["inspect", "ct-a"])?;
    let ea = &a["NetworkSettings"]["Networks"]["v6a"];
    let a6 = ea["GlobalIPv6Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(a6.starts_with("fd00:db8:71::"), "{ea}");
    assert_eq!(ea["GlobalIPv6PrefixLen"], 64, "{ea}");
    assert_eq!(ea["IPv6Gateway"], "fd00:db8:71::fe", "{ea}");
    assert!(
        ea["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .starts_with("10.231.0."),
        "{ea}"
    );
    let b = inspect(&berthd, &["inspect", "ct-b"])?;
    let eb = &b["NetworkSettings"]["Networks"]["v6a"];
    assert_eq!(eb["GlobalIPv6Address"], "fd00:db8:71::99", "{eb}");
    assert_eq!(eb["IPAMConfig"]["IPv6Address"], "fd00:db8:71::99", "{eb}");
    let b4 = eb["IPAddress"].as_str().unwrap_or_default().to_string();
    let b_id = b["Id"].as_str().unwrap_or_default().to_string();
    let b_ep = eb["EndpointID"].as_str().unwrap_or_default().to_string();
    assert!(is_hex64(&b_ep), "{eb}");
    let net = inspect(&berthd, &["network", "inspect", "v6a"])?;
    let nb = &net["Containers"][&b_id];
    assert_eq!(nb["IPv6Address"], "fd00:db8:71::99/64", "{net}");
    assert_eq!(nb["EndpointID"], b_ep.as_str(), "{net}");

    // The bridge carries the IPv6 gateway.
    let addrs = run_ok(Command::new("ip").args(["-6", "addr", "show", "dev", "bt-v6-a"]))?;
    assert!(addrs.contains("fd00:db8:71::fe/64"), "{addrs}");

    // Over IPv6 between the containers: ping6, HTTP.
    exec_until(
        &berthd,
        "ct-a",
        &["ping", "-6", "-c", "1", "-W", "1", "fd00:db8:71::99"],
    )?;
    let page = exec_until(
        &berthd,
        "ct-a",
        &[
            "sh",
            "-c",
            "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 fd00:db8:71::99 80 | grep bee",
        ],
    )?;
    assert!(page.contains("bee"), "{page}");

    // AAAA answers by name and alias on the network.
    let out = exec_until(&berthd, "ct-a", &["nslookup", "-type=aaaa", "ct-b"])?;
    assert!(out.contains("fd00:db8:71::99"), "{out}");
    let out = exec_until(&berthd, "ct-b", &["nslookup", "-type=aaaa", "alpha"])?;
    assert!(out.contains(&a6), "{out}");
    let out = exec_until(&berthd, "ct-b", &["nslookup", "-type=a", "alpha"])?;
    assert!(!out.contains("fd00:"), "{out}");

    // /etc/hosts: the IPv4 line, then the IPv6 one, as dockerd writes them.
    let hosts = d(&["exec", "ct-b", "cat", "/etc/hosts"])?;
    assert!(
        hosts.ends_with(&format!("{b4}\tbee\nfd00:db8:71::99\tbee\n")),
        "{hosts}"
    );

    // `network connect --ip6` of a running default-bridge container.
    d(&["run", "-d", "--name", "ct-c", "busybox", "sleep", "300"])?;
    refused(
        &berthd,
        &[
            "network",
            "connect",
            "--ip6",
            "fd00:db8:6666::7",
            "v6a",
            "ct-c",
        ],
        "It does not belong to any of this network's subnets",
    )?;
    d(&[
        "network",
        "connect",
        "--ip6",
        "fd00:db8:71::77",
        "v6a",
        "ct-c",
    ])?;
    let c = inspect(&berthd, &["inspect", "ct-c"])?;
    assert_eq!(
        c["NetworkSettings"]["Networks"]["v6a"]["GlobalIPv6Address"], "fd00:db8:71::77",
        "{c}"
    );
    exec_until(
        &berthd,
        "ct-a",
        &["ping", "-6", "-c", "1", "-W", "1", "fd00:db8:71::77"],
    )?;

    // --ip6 on a network without IPv6: dockerd's words.
    d(&[
        "network",
        "create",
        "--subnet",
        "10.234.0.0/24",
        "-o",
        "com.docker.network.bridge.name=bt-v6-u",
        "four",
    ])?;
    refused(
        &berthd,
        &["run", "--rm", "--network", "four", "--ip6", "fd00:db8:71::5", "busybox", "true"],
        "user specified IP address is supported only when connecting to networks with user configured subnets",
    )?;

    // A restart keeps the endpoint id and the asked address.
    d(&["restart", "-t", "1", "ct-b"])?;
    let b = inspect(&berthd, &["inspect", "ct-b"])?;
    let eb = &b["NetworkSettings"]["Networks"]["v6a"];
    assert_eq!(eb["EndpointID"], b_ep.as_str(), "{eb}");
    assert_eq!(eb["GlobalIPv6Address"], "fd00:db8:71::99", "{eb}");

    // --internal covers IPv6: no IPv6 default route, nothing past the subnet.
    d(&[
        "network",
        "create",
        "--internal",
        "--ipv6",
        "--subnet",
        "fd00:db8:74::/64",
        "-o",
        "com.docker.network.bridge.name=bt-v6-int",
        "v6int",
    ])?;
    let routes = d(&[
        "run",
        "--rm",
        "--network",
        "v6int",
        "busybox",
        "ip",
        "-6",
        "route",
        "show",
    ])?;
    assert!(routes.contains("fd00:db8:74::/64"), "{routes}");
    assert!(!routes.contains("default"), "{routes}");

    // While it runs, berth's nft table masquerades the IPv6 subnet.
    let table = berth_e2e::nft_table_of(&berthd.root());
    let rules = firewall_listing("nft", &["list", "table", "inet", &table])?.unwrap_or_default();
    assert!(rules.contains("fd00:db8:71::/64"), "{rules}");
    assert!(!rules.contains("fd00:db8:74::/64"), "internal: {rules}");

    // Afterwards nothing is left: addresses, bridges, leases, rules.
    d(&["rm", "-f", "ct-a", "ct-b", "ct-c"])?;
    d(&["network", "rm", "v6a", "v6int", "four"])?;
    let all6 = run_ok(Command::new("ip").args(["-6", "addr", "show"]))?;
    assert!(!all6.contains("fd00:db8:7"), "{all6}");
    for b in BRIDGES {
        assert!(
            !std::path::Path::new("/sys/class/net").join(b).exists(),
            "bridge {b} left"
        );
    }
    let leases: Vec<String> = std::fs::read_dir(berthd.state().join("networks/ipam"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|n| std::fs::read_dir(n.path()).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    let ruleset = firewall_listing("nft", &["list", "ruleset"])?.unwrap_or_default();
    assert!(!ruleset.contains("fd00:db8:7"), "{ruleset}");
    Ok(())
}

const SDK: &str = r##"
import sys, time, docker
from docker.types import IPAMConfig, IPAMPool
c = docker.DockerClient(base_url=sys.argv[1])
net = c.networks.create("sdk6", driver="bridge", enable_ipv6=True,
    options={"com.docker.network.bridge.name": "bt-v6-sdk"},
    ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="fd00:db8:73::/64"),
                                  IPAMPool(subnet="10.233.0.0/24")]))
net.reload()
assert net.attrs["EnableIPv6"] is True, net.attrs
subnets = sorted(p["Subnet"] for p in net.attrs["IPAM"]["Config"])
assert subnets == ["10.233.0.0/24", "fd00:db8:73::/64"], subnets
ct = c.containers.run("busybox", ["sleep", "300"], detach=True, network="sdk6", name="sdk6c")
ct.reload()
ep = ct.attrs["NetworkSettings"]["Networks"]["sdk6"]
assert ep["GlobalIPv6Address"].startswith("fd00:db8:73::"), ep
assert ep["IPv6Gateway"] == "fd00:db8:73::1", ep
assert len(ep["EndpointID"]) == 64, ep
net.reload()
assert net.attrs["Containers"][ct.id]["IPv6Address"] == ep["GlobalIPv6Address"] + "/64", net.attrs
ct.remove(force=True)
net.remove()
print("sdk ipv6 ok")
"##;

#[test]
fn ipv6_network_with_the_python_sdk() -> Result<()> {
    require_root();
    if let Some(why) = no_ipv6() {
        eprintln!("skipped: IPv6 networks through the SDK ({why})");
        return Ok(());
    }
    let _bridges = BridgeGuard(&BRIDGES);
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = berthd.python_sdk(SDK)?;
    assert_eq!(out.trim(), "sdk ipv6 ok");
    assert!(!std::path::Path::new("/sys/class/net/bt-v6-sdk").exists());
    let all6 = run_ok(Command::new("ip").args(["-6", "addr", "show"]))?;
    assert!(!all6.contains("fd00:db8:73"), "{all6}");
    Ok(())
}

#[test]
fn default_bridge_connect_endpoint_ids_and_add_host_on_host_and_none() -> Result<()> {
    require_root();
    let _bridges = BridgeGuard(&BRIDGES);
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let d = |args: &[&str]| run_ok(berthd.docker().args(args));
    d(&[
        "network",
        "create",
        "--subnet",
        "10.235.0.0/24",
        "-o",
        "com.docker.network.bridge.name=bt-v6-u",
        "u",
    ])?;
    d(&[
        "run",
        "-d",
        "--name",
        "ct-e",
        "--network",
        "u",
        "busybox",
        "sleep",
        "300",
    ])?;
    // Connecting to the default bridge: allowed, but not with an alias or an address.
    refused(
        &berthd,
        &["network", "connect", "--alias", "x", "bridge", "ct-e"],
        "network-scoped alias is supported only for containers in user defined networks",
    )?;
    refused(
        &berthd,
        &["network", "connect", "--ip", "10.1.1.1", "bridge", "ct-e"],
        "user specified IP address is supported on user defined networks only",
    )?;
    d(&["network", "connect", "bridge", "ct-e"])?;
    let e = inspect(&berthd, &["inspect", "ct-e"])?;
    let id = e["Id"].as_str().unwrap_or_default().to_string();
    let prefix = berthd.default_subnet().replace(".0/24", ".");
    let on_bridge = &e["NetworkSettings"]["Networks"]["bridge"];
    assert!(
        on_bridge["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&prefix),
        "{on_bridge}"
    );
    let ip = on_bridge["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let addrs = d(&["exec", "ct-e", "ip", "-o", "-4", "addr"])?;
    assert!(addrs.contains(&ip), "{addrs}");

    // Endpoint ids: 64 hex, the same in both inspects, kept across a restart.
    let ep_u = e["NetworkSettings"]["Networks"]["u"]["EndpointID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(is_hex64(&ep_u), "{e}");
    let ep_b = on_bridge["EndpointID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(is_hex64(&ep_b) && ep_b != ep_u, "{e}");
    assert_eq!(e["NetworkSettings"]["EndpointID"], ep_b.as_str());
    let net = inspect(&berthd, &["network", "inspect", "u"])?;
    assert_eq!(net["Containers"][&id]["EndpointID"], ep_u.as_str(), "{net}");
    d(&["restart", "-t", "1", "ct-e"])?;
    let e = inspect(&berthd, &["inspect", "ct-e"])?;
    assert_eq!(
        e["NetworkSettings"]["Networks"]["u"]["EndpointID"],
        ep_u.as_str()
    );
    assert_eq!(
        e["NetworkSettings"]["Networks"]["bridge"]["EndpointID"],
        ep_b.as_str()
    );
    d(&["network", "disconnect", "bridge", "ct-e"])?;
    d(&["rm", "-f", "ct-e"])?;
    d(&["network", "rm", "u"])?;

    // --add-host with host and none: dockerd 20.10's hosts file with the entries.
    for mode in ["none", "host"] {
        let hosts = d(&[
            "run",
            "--rm",
            "--network",
            mode,
            "--add-host",
            "db:192.0.2.9",
            "--add-host",
            "six:fd00::9",
            "busybox",
            "cat",
            "/etc/hosts",
        ])?;
        assert!(
            hosts.starts_with("127.0.0.1\tlocalhost\n"),
            "{mode}: {hosts}"
        );
        assert!(
            hosts.ends_with("ff02::2\tip6-allrouters\n192.0.2.9\tdb\nfd00::9\tsix\n"),
            "{mode}: {hosts}"
        );
    }
    Ok(())
}
