//! Container networks through the Python `docker` SDK (installed by hack/deps.sh)
//! against a private berthd: containers on a user network reach each other by name
//! and by alias and a third on another network cannot; ports published with
//! `ports=` and `publish_all_ports=True` answer from the host; `network.connect` /
//! `disconnect` of a running container change what it resolves and reaches; an
//! `internal=True` network has no way out; `network_mode='container:<id>'` shares
//! the namespace; `network.reload()` attrs and `networks.prune` (label, until). Afterwards no
//! bridge, veth or lease of the test is left.

use std::process::Command;

use anyhow::Result;
use berth_e2e::{require_root, run_ok, Berthd, BridgeGuard};

const SCENARIO: &str = r##"
import http.client, socket, sys, time, docker
c = docker.DockerClient(base_url=sys.argv[1])
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def get(port, tries=30):
    """GET /hostname from the host: (status, body), or None when nothing answers."""
    for _ in range(tries):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
            conn.request("GET", "/hostname")
            r = conn.getresponse()
            return r.status, r.read().decode()
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    return None

def lookup(ct, name):
    """nslookup in the container: the addresses answered, or None on NXDOMAIN."""
    code, out = ct.exec_run(["nslookup", name])
    out = out.decode()
    if code != 0:
        assert "NXDOMAIN" in out, (name, out)
        return None
    return [l.split(":", 1)[1].strip()
            for part in out.split("Name:")[1:]
            for l in part.splitlines() if l.strip().startswith("Address:")]

def pings(ct, addr, wait=3):
    code, out = ct.exec_run(["ping", "-c", "1", "-W", str(wait), addr])
    return code == 0

def http_from(ct, addr, port=80):
    # Debian's static busybox wget crashes in its resolver; nc speaks HTTP here.
    code, out = ct.exec_run(["sh", "-c",
        "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 %s %d" % (addr, port)])
    return out.decode()

def ip_on(ct, net):
    ct.reload()
    return ct.attrs["NetworkSettings"]["Networks"][net]["IPAddress"]

def ipam(subnet):
    return docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])

def bridge(name):
    return {"com.docker.network.bridge.name": name}

# --- Two networks; name and alias on one, nothing across. ---
neta = c.networks.create("sdka", driver="bridge", ipam=ipam("10.236.0.0/24"),
                         options=bridge("bt-sdk-a"), labels={"t": "sdk"})
netb = c.networks.create("sdkb", ipam=ipam("10.237.0.0/24"), options=bridge("bt-sdk-b"))
assert c.networks.get("sdka").id == neta.id
assert neta.attrs["Labels"] == {"t": "sdk"}, neta.attrs

a1 = c.containers.run("busybox", HTTPD, detach=True, name="a1", network="sdka",
                      networking_config={"sdka": c.api.create_endpoint_config(aliases=["web"])})
a2 = c.containers.run("busybox", ["sleep", "300"], detach=True, name="a2", network="sdka")
b1 = c.containers.run("busybox", ["sleep", "300"], detach=True, name="b1", network="sdkb")
a1_ip, a2_ip, b1_ip = ip_on(a1, "sdka"), ip_on(a2, "sdka"), ip_on(b1, "sdkb")
assert a1_ip.startswith("10.236.0.") and a2_ip.startswith("10.236.0."), (a1_ip, a2_ip)
assert b1_ip.startswith("10.237.0."), b1_ip
assert "web" in a1.attrs["NetworkSettings"]["Networks"]["sdka"]["Aliases"], a1.attrs["NetworkSettings"]
a1_host = a1.exec_run(["hostname"])[1].decode()
for name in ["a1", "web", a1.id[:12]]:
    assert lookup(a2, name) == [a1_ip], (name, lookup(a2, name))
    out = http_from(a2, lookup(a2, name)[0])
    assert out.startswith("HTTP/1.") and out.endswith(a1_host), (name, out)
assert pings(a2, a1_ip)
assert lookup(b1, "a1") is None and lookup(b1, "web") is None
assert lookup(a2, "b1") is None
assert not pings(b1, a1_ip, 2), "sdkb reached sdka"
assert "HTTP/1." not in http_from(b1, a1_ip), "sdkb reached sdka's httpd"

# network.reload(): the attached containers and the IPAM.
neta.reload()
attached = neta.attrs["Containers"]
assert set(attached) == {a1.id, a2.id}, attached
assert attached[a1.id]["Name"] == "a1", attached
assert attached[a1.id]["IPv4Address"] == a1_ip + "/24", attached
assert neta.attrs["IPAM"]["Driver"] == "default", neta.attrs["IPAM"]
cfg = neta.attrs["IPAM"]["Config"][0]
assert cfg["Subnet"] == "10.236.0.0/24" and cfg["Gateway"] == "10.236.0.1", cfg
assert sorted(x.name for x in neta.containers) == ["a1", "a2"]
assert neta.attrs["Driver"] == "bridge" and neta.attrs["Internal"] is False, neta.attrs

# --- Published ports from the host. ---
port = free_port()
web1 = c.containers.run("busybox", HTTPD, detach=True, name="web1", network="sdka",
                        ports={"80/tcp": ("127.0.0.1", port)})
got = get(port)
web1_host = web1.exec_run(["hostname"])[1].decode()
assert got == (200, web1_host), (got, web1_host)
web1.reload()
assert web1.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}, web1.ports
assert web1.attrs["HostConfig"]["PortBindings"] == {
    "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}, web1.attrs["HostConfig"]
# publish_all_ports: the exposed port on a host port of berth's choosing.
web2 = c.containers.run("busybox", HTTPD, detach=True, name="web2", network="sdka",
                        ports={"80/tcp": None}, publish_all_ports=True)
web2.reload()
assert web2.attrs["HostConfig"]["PublishAllPorts"] is True, web2.attrs["HostConfig"]
bound = web2.ports["80/tcp"]
assert bound and int(bound[0]["HostPort"]) > 0, web2.ports
web2_host = web2.exec_run(["hostname"])[1].decode()
got = get(int(bound[0]["HostPort"]))
assert got == (200, web2_host), (got, web2_host)
# The low-level API: only ExposedPorts and PublishAllPorts, no bindings at all.
cid = c.api.create_container("busybox", HTTPD, name="web3", ports=[80],
                             host_config=c.api.create_host_config(publish_all_ports=True,
                                                                  network_mode="sdka"))["Id"]
c.api.start(cid)
web3 = c.containers.get(cid)
bound = web3.ports["80/tcp"]
assert bound and int(bound[0]["HostPort"]) > 0, web3.ports
got = get(int(bound[0]["HostPort"]))
assert got == (200, web3.exec_run(["hostname"])[1].decode()), got
for w in [web1, web2, web3]:
    w.remove(force=True)
assert get(port, tries=3) is None, "still published after removal"

# --- connect/disconnect of a running container. ---
neta.connect(b1, aliases=["cache"])
b1_a = ip_on(b1, "sdka")
assert b1_a.startswith("10.236.0."), b1_a
assert "cache" in b1.attrs["NetworkSettings"]["Networks"]["sdka"]["Aliases"], b1.attrs
assert lookup(b1, "a1") == [a1_ip]
assert lookup(a2, "cache") == [b1_a]
assert lookup(a2, "b1") == [b1_a]
assert pings(b1, a1_ip)
assert "HTTP/1." in http_from(b1, a1_ip)
neta.reload()
assert b1.id in neta.attrs["Containers"], neta.attrs["Containers"]
try:
    neta.connect(b1)
    raise SystemExit("connected twice")
except docker.errors.APIError as e:
    assert "already exists in network sdka" in str(e), e
neta.disconnect(b1)
b1.reload()
assert set(b1.attrs["NetworkSettings"]["Networks"]) == {"sdkb"}, b1.attrs["NetworkSettings"]
assert lookup(b1, "a1") is None and lookup(a2, "cache") is None
assert not pings(b1, a1_ip, 2), "reached sdka after disconnect"
neta.reload()
assert set(neta.attrs["Containers"]) == {a1.id, a2.id}, neta.attrs["Containers"]

# A container disconnected from its only network before it starts runs with
# loopback alone (as Docker's); connected while it runs, it gets eth0 and reaches
# sdka; disconnected again, nothing but lo.
lone = c.containers.create("busybox", ["sleep", "300"], name="lone", network="sdka")
neta.disconnect(lone)
lone.reload()
assert lone.attrs["NetworkSettings"]["Networks"] == {}, lone.attrs["NetworkSettings"]
lone.start()
code, links = lone.exec_run(["ip", "-o", "link"])
assert code == 0 and b"lo:" in links and b"eth0" not in links, links
code, out = lone.exec_run(["ping", "-c", "1", "-W", "2", "127.0.0.1"])
assert code == 0, out
neta.connect(lone, aliases=["alone"])
lone_ip = ip_on(lone, "sdka")
assert lookup(a2, "alone") == [lone_ip], lone_ip
assert pings(lone, a1_ip) and lookup(lone, "web") == [a1_ip]
neta.disconnect(lone)
code, links = lone.exec_run(["ip", "-o", "link"])
assert b"eth0" not in links, links
lone.restart(timeout=0)
code, links = lone.exec_run(["ip", "-o", "link"])
assert code == 0 and b"eth0" not in links, links
lone.remove(force=True)

# --- An internal network: no default route, nothing beyond its subnet. ---
netc = c.networks.create("sdkc", internal=True, ipam=ipam("10.238.0.0/24"),
                         options=bridge("bt-sdk-c"))
assert netc.attrs["Internal"] is True, netc.attrs
c1 = c.containers.run("busybox", ["sleep", "300"], detach=True, name="c1", network="sdkc")
code, routes = c1.exec_run(["ip", "route"])
assert b"default" not in routes, routes
code, routes = a2.exec_run(["ip", "route"])
assert b"default via 10.236.0.1" in routes, routes
# The open network routes out: the internal bridge's (host) address answers a2;
# the internal one reaches neither that nor the other bridge's address.
assert pings(a2, "10.238.0.1")
assert not pings(c1, "10.236.0.1", 2), "internal network reached out"

# --- network_mode container:<id> shares a2's namespace. ---
sib = c.containers.run("busybox", ["httpd", "-f", "-p", "8080", "-h", "/etc"], detach=True,
                       name="sib", network_mode="container:" + a2.id)
sib.reload()
assert sib.attrs["HostConfig"]["NetworkMode"] == "container:" + a2.id, sib.attrs["HostConfig"]
# (Retried: once in about six runs this first exec returned no output at all; see
# the helper's report.)
for _ in range(10):
    code, addrs = sib.exec_run(["ip", "-o", "-4", "addr"])
    if (a2_ip + "/24").encode() in addrs:
        break
    time.sleep(0.3)
assert (a2_ip + "/24").encode() in addrs, (code, addrs)
for _ in range(20):
    out = http_from(a2, "127.0.0.1", 8080)
    if out.startswith("HTTP/1."):
        break
    time.sleep(0.2)
assert out.startswith("HTTP/1."), out
assert lookup(sib, "a1") == [a1_ip]
# Docker's refusals: connecting a container: / none mode container, publishing from one.
try:
    netb.connect(sib)
    raise SystemExit("connected a container: mode container")
except docker.errors.APIError as e:
    assert ("container sharing network namespace with another container or host cannot be "
            "connected to any other network") in str(e), e
nonet = c.containers.run("busybox", ["sleep", "300"], detach=True, name="nonet",
                         network_mode="none")
try:
    netb.connect(nonet)
    raise SystemExit("connected a none mode container")
except docker.errors.APIError as e:
    assert "one of the networks in private (none) mode" in str(e), e
nonet.remove(force=True)
try:
    c.containers.create("busybox", name="sib2", network_mode="container:" + a2.id,
                        ports={"80/tcp": ("127.0.0.1", free_port())})
    raise SystemExit("published ports of a container: mode container")
except docker.errors.APIError as e:
    assert "conflicting options: port publishing and the container type network mode" \
        in str(e), e

# --- prune: unused networks only, a label filter first. ---
spare = c.networks.create("sdk-spare", labels={"t": "sdk"})
try:
    neta.remove()
    raise SystemExit("removed a network in use")
except docker.errors.APIError as e:
    assert "has active endpoints" in str(e), e
for ct in [sib, a1, a2, b1, c1]:
    ct.remove(force=True)
res = c.networks.prune(filters={"until": "1h"})       # made within the hour: kept
assert res["NetworksDeleted"] is None, res
res = c.networks.prune(filters={"label": "t=sdk", "until": str(int(time.time()) + 60)})
assert sorted(res["NetworksDeleted"]) == ["sdk-spare", "sdka"], res
res = c.networks.prune()
assert sorted(res["NetworksDeleted"]) == ["sdkb", "sdkc"], res
assert sorted(n.name for n in c.networks.list()) == ["bridge", "host", "none"]
try:
    c.networks.get("sdka")
    raise SystemExit("a pruned network is still there")
except docker.errors.NotFound:
    pass
print("sdk networks ok")
"##;

const BRIDGES: [&str; 3] = ["bt-sdk-a", "bt-sdk-b", "bt-sdk-c"];

#[test]
fn python_sdk_networks_names_ports_connect_internal_prune() -> Result<()> {
    require_root();
    let _bridges = BridgeGuard(&BRIDGES);
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = berthd.python_sdk(SCENARIO)?;
    assert_eq!(out.trim(), "sdk networks ok");

    // Nothing of the test's networks is left on the host: bridges, veths on the
    // default bridge, address leases, CNI results, namespace pins.
    for b in BRIDGES {
        assert!(
            !std::path::Path::new("/sys/class/net").join(b).exists(),
            "bridge {b} left"
        );
    }
    let veths =
        run_ok(Command::new("ip").args(["-o", "link", "show", "master", &berthd.default_bridge()]))
            .unwrap_or_default();
    assert!(veths.trim().is_empty(), "{veths}");
    let state = berthd.state().join("networks");
    for sub in ["cni/results", "netns"] {
        let left: Vec<_> = std::fs::read_dir(state.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
    let leases: Vec<String> = std::fs::read_dir(state.join("ipam"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|net| {
            std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    Ok(())
}
