//! UDP publishing through Debian's docker 20.10 client and the Python `docker` SDK:
//! `-p 127.0.0.1:PORT:5353/udp` (and `ports={'5353/udp': ...}`) to a UDP echo server
//! in a container; a datagram from the host's loopback gets its echo back, and one
//! from another container on the same network to the port published on the
//! network's gateway address (the host's, on the test's bridge) too. busybox has no
//! UDP listener, so the server is the host's python3, bind-mounted read-only with
//! its libraries. When the container goes, nothing answers and no rule names the
//! port.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_e2e::{firewall_listing, require_root, run, run_ok, Berthd, BridgeGuard};

/// The echo server run in the container: every datagram back with `echo:` before it.
const ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, addr = s.recvfrom(2048)
    s.sendto(b"echo:" + data, addr)
"#;

/// The client run in a second container: sends to argv[1]:argv[2] until an answer
/// comes, prints it with the address it came from.
const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for _ in range(20):
    s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    print(data.decode(), "%s:%d" % addr)
    break
"#;

/// The host's python3 and what it needs, bind-mounted read-only into busybox
/// containers. None (with the reason printed) when the host lacks them.
fn python_mounts() -> Option<Vec<String>> {
    let needed = [
        "/usr/bin/python3",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib",
        "/usr/lib",
    ];
    if let Some(missing) = needed.iter().find(|p| !Path::new(p).exists()) {
        println!("skipped: the host has no {missing} to run a UDP echo server with");
        return None;
    }
    let works = Command::new("/usr/bin/python3")
        .args(["-c", "import socket"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        println!("skipped: the host's /usr/bin/python3 does not run");
        return None;
    }
    Some(
        ["/usr", "/lib", "/lib64"]
            .iter()
            .map(|d| format!("{d}:{d}:ro"))
            .collect(),
    )
}

fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A datagram from the host's loopback to `port`; the answer, or None after `tries`
/// seconds of silence.
fn udp_ask(port: u16, msg: &str, tries: u32) -> Result<Option<String>> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 2048];
    for _ in 0..tries {
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port))?;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    Ok(None)
}

/// iptables rules naming `port` (the CNI portmap plugin's DNAT rules).
fn rules_naming(port: u16) -> Result<Vec<String>> {
    let rules = firewall_listing("iptables-save", &[])?.unwrap_or_default();
    let needle = format!("--dport {port} ");
    Ok(rules
        .lines()
        .filter(|l| l.starts_with("-A") && l.contains(&needle))
        .map(str::to_string)
        .collect())
}

fn scripts() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("echo.py"), ECHO)?;
    std::fs::write(dir.path().join("client.py"), CLIENT)?;
    Ok(dir)
}

#[test]
fn docker_cli_publishes_udp() -> Result<()> {
    require_root();
    let Some(mounts) = python_mounts() else {
        return Ok(());
    };
    let _bridge = BridgeGuard(&["bt-udp-a"]);
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let dir = scripts()?;
    let srv = format!("{}:/srv:ro", dir.path().display());
    run_ok(berthd.docker().args([
        "network",
        "create",
        "--subnet",
        "10.247.0.0/24",
        "-o",
        "com.docker.network.bridge.name=bt-udp-a",
        "udpnet",
    ]))?;
    // The client first: its attachment makes the bridge whose address the second
    // binding below publishes on.
    let mut cmd = berthd.docker();
    cmd.args(["run", "-d", "--name", "client", "--network", "udpnet"]);
    for m in mounts.iter().chain([&srv]) {
        cmd.args(["-v", m]);
    }
    run_ok(cmd.args(["busybox", "sleep", "300"]))?;

    let (p1, p2) = (free_udp_port()?, free_udp_port()?);
    let mut cmd = berthd.docker();
    cmd.args(["run", "-d", "--name", "echo", "--network", "udpnet"])
        .arg("-p")
        .arg(format!("127.0.0.1:{p1}:5353/udp"))
        .arg("-p")
        .arg(format!("10.247.0.1:{p2}:5353/udp"));
    for m in mounts.iter().chain([&srv]) {
        cmd.args(["-v", m]);
    }
    run_ok(cmd.args(["busybox", "/usr/bin/python3", "/srv/echo.py"]))?;

    let answer =
        udp_ask(p1, "from-host", 30).with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(answer.as_deref(), Some("echo:from-host"));
    let out = run_ok(berthd.docker().args(["port", "echo", "5353/udp"]))?;
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [format!("10.247.0.1:{p2}"), format!("127.0.0.1:{p1}")],
        "{out}"
    );
    let out = run_ok(
        berthd
            .docker()
            .args(["ps", "--format", "{{.Ports}}", "-f", "name=echo"]),
    )?;
    assert!(out.contains(&format!("127.0.0.1:{p1}->5353/udp")), "{out}");

    // From another container of the network, through the host's address.
    let out = run_ok(berthd.docker().args([
        "exec",
        "client",
        "/usr/bin/python3",
        "/srv/client.py",
        "10.247.0.1",
        &p2.to_string(),
        "from-client",
    ]))?;
    assert!(
        out.starts_with(&format!("echo:from-client 10.247.0.1:{p2}")),
        "{out:?}"
    );

    run_ok(berthd.docker().args(["rm", "-f", "echo", "client"]))?;
    assert_eq!(udp_ask(p1, "after", 2)?, None, "still published");
    assert_eq!(rules_naming(p1)?, Vec::<String>::new());
    assert_eq!(rules_naming(p2)?, Vec::<String>::new());
    run_ok(berthd.docker().args(["network", "rm", "udpnet"]))?;
    assert!(
        !Path::new("/sys/class/net/bt-udp-a").exists(),
        "bridge left"
    );
    let (code, _, _) = run(berthd.docker().args(["network", "inspect", "udpnet"]))?;
    assert_ne!(code, 0);
    Ok(())
}

const SDK_SCENARIO: &str = r##"
import json, socket, sys, time, docker
c = docker.DockerClient(base_url=sys.argv[1])
srv, p1, p2 = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
vols = {d: {"bind": d, "mode": "ro"} for d in ["/usr", "/lib", "/lib64"]}
vols[srv] = {"bind": "/srv", "mode": "ro"}

def ask(port, msg, tries):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    for _ in range(tries):
        s.sendto(msg, ("127.0.0.1", port))
        try:
            return s.recvfrom(2048)[0]
        except socket.timeout:
            pass
    return None

net = c.networks.create("udpsdk", ipam=docker.types.IPAMConfig(
    pool_configs=[docker.types.IPAMPool(subnet="10.248.0.0/24")]),
    options={"com.docker.network.bridge.name": "bt-udp-b"})
client = c.containers.run("busybox", ["sleep", "300"], detach=True, name="client",
                          network="udpsdk", volumes=vols)
echo = c.containers.run("busybox", ["/usr/bin/python3", "/srv/echo.py"], detach=True,
                        name="echo", network="udpsdk", volumes=vols,
                        ports={"5353/udp": [("127.0.0.1", p1), ("10.248.0.1", p2)]})
got = ask(p1, b"from-sdk-host", 30)
assert got == b"echo:from-sdk-host", got
echo.reload()
bound = sorted((b["HostIp"], b["HostPort"]) for b in echo.ports["5353/udp"])
assert bound == [("10.248.0.1", str(p2)), ("127.0.0.1", str(p1))], echo.ports
assert "5353/udp" in echo.attrs["Config"]["ExposedPorts"], echo.attrs["Config"]
code, out = client.exec_run(["/usr/bin/python3", "/srv/client.py", "10.248.0.1", str(p2),
                             "from-sdk-client"])
assert code == 0 and out.decode().startswith("echo:from-sdk-client 10.248.0.1:%d" % p2), out
echo.remove(force=True)
assert ask(p1, b"after", 2) is None, "still published"
client.remove(force=True)
net.remove()
print("sdk udp ok")
"##;

#[test]
fn python_sdk_publishes_udp() -> Result<()> {
    require_root();
    if python_mounts().is_none() {
        return Ok(());
    }
    let _bridge = BridgeGuard(&["bt-udp-b"]);
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let dir = scripts()?;
    let path = dir.path().join("scenario.py");
    std::fs::write(&path, SDK_SCENARIO)?;
    let (p1, p2) = (free_udp_port()?, free_udp_port()?);
    let out = run_ok(
        Command::new("python3")
            .arg(&path)
            .arg(berthd.docker_host())
            .arg(dir.path())
            .arg(p1.to_string())
            .arg(p2.to_string()),
    )
    .with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(out.trim(), "sdk udp ok");
    assert_eq!(rules_naming(p1)?, Vec::<String>::new());
    assert_eq!(rules_naming(p2)?, Vec::<String>::new());
    assert!(
        !Path::new("/sys/class/net/bt-udp-b").exists(),
        "bridge left"
    );
    Ok(())
}
