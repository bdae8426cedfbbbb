//! The Docker Engine API's system endpoints through real clients: Debian's docker
//! 20.10 CLI, the docker 28 CLI, the Python Docker SDK, and raw HTTP for error shapes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use berth_e2e::{binary, require_root, run_ok, Berthd};

/// The docker CLIs on this kind of machine: Debian's `docker.io` and a newer client.
const DOCKER_CLIS: [&str; 2] = ["/usr/bin/docker", "/usr/local/bin/docker"];

fn docker(cli: &str, berthd: &Berthd) -> Command {
    let mut cmd = Command::new(cli);
    cmd.env("DOCKER_HOST", berthd.docker_host())
        .env("DOCKER_CONFIG", berthd.root().join("docker-client-config"));
    cmd
}

#[test]
fn docker_clis_negotiate_and_read_version_and_info() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let mut tried = 0;
    for cli in DOCKER_CLIS {
        if !Path::new(cli).exists() {
            // /usr/bin/docker comes from Debian's docker.io, which hack/deps.sh installs;
            // the newer client ships with this kind of machine.
            assert_ne!(
                cli, "/usr/bin/docker",
                "Debian's docker.io client is missing: run hack/deps.sh"
            );
            eprintln!("skipped: the {cli} client (not on this host)");
            continue;
        }
        tried += 1;
        let api =
            run_ok(docker(cli, &berthd).args(["version", "--format", "{{.Server.APIVersion}}"]))?;
        assert_eq!(api.trim(), "1.41", "{cli}");
        let info = run_ok(docker(cli, &berthd).args(["info", "--format", "{{json .}}"]))?;
        let info: serde_json::Value =
            serde_json::from_str(&info).with_context(|| format!("{cli} info: {info}"))?;
        assert_eq!(
            info["DockerRootDir"].as_str().map(Path::new),
            Some(berthd.root().as_path())
        );
        assert_eq!(info["OSType"], "linux");
        assert!(info["NCPU"].as_u64().unwrap_or(0) >= 1, "{info}");
        assert!(info["MemTotal"].as_u64().unwrap_or(0) > 0, "{info}");
        assert_eq!(info["Containers"], 0);
        let hostname = nix::unistd::gethostname()?.to_string_lossy().into_owned();
        assert_eq!(info["Name"], hostname);
    }
    assert!(tried >= 1);
    Ok(())
}

#[test]
fn python_docker_sdk_pings_and_reads_version() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let script = r#"
import json, sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
print(json.dumps({"ping": client.ping(), "api": client.version()["ApiVersion"],
                  "root": client.info()["DockerRootDir"]}))
"#;
    let out = run_ok(Command::new("python3").args(["-c", script, &berthd.docker_host()]))?;
    let out: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(out["ping"], true);
    assert_eq!(out["api"], "1.41");
    assert_eq!(
        out["root"].as_str().map(Path::new),
        Some(berthd.root().as_path())
    );
    Ok(())
}

/// Sends one HTTP/1.0 request over the socket; returns (status, body).
fn raw_request(socket: &Path, method: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)?;
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: berth\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn errors_have_dockers_shape() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let socket = berthd.docker_socket();
    let (status, body) = raw_request(&socket, "GET", "/v1.41/nonexistent")?;
    assert_eq!(status, 404);
    let body: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(body["message"], "page not found");
    let (status, body) = raw_request(&socket, "GET", "/v1.99/info")?;
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(
        body["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.41"
    );
    let (status, body) = raw_request(&socket, "GET", "/_ping")?;
    assert_eq!((status, body.as_str()), (200, "OK"));
    Ok(())
}

#[test]
fn one_daemon_per_root_and_sigterm_removes_the_socket() -> Result<()> {
    require_root();
    let mut berthd = Berthd::start()?;
    let mode = std::fs::metadata(berthd.docker_socket())?;
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o660
    );
    let second = Command::new(binary("berthd")?)
        .arg("--root")
        .arg(berthd.root())
        .arg("--state")
        .arg(berthd.state())
        .output()?;
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another berthd"), "{stderr}");
    assert!(
        berthd.docker_socket().exists(),
        "the refused daemon must not touch the socket"
    );
    assert!(
        berthd.cri_socket().exists(),
        "the refused daemon must not touch the CRI socket"
    );
    berthd.stop()?;
    assert!(!berthd.docker_socket().exists());
    assert!(!berthd.cri_socket().exists());
    // A kill -9 leaves a stale socket; the next daemon replaces it.
    berthd.restart()?;
    berthd.kill9()?;
    assert!(berthd.docker_socket().exists());
    berthd.restart()?;
    let (status, _) = raw_request(&berthd.docker_socket(), "GET", "/_ping")?;
    assert_eq!(status, 200);
    Ok(())
}

/// What dockerd 20.10 reports for this host, read the way its sysinfo reads a cgroup v1
/// host (the control files under /sys/fs/cgroup/<controller>) or a v2 host (the root's
/// controllers): `(field, value)` (fields by their Go names, as templates use them) and
/// the warnings dockerd derives from them.
fn dockerd_view_of_this_host() -> (Vec<(&'static str, bool)>, Vec<&'static str>) {
    let cg = Path::new("/sys/fs/cgroup");
    let proc_on = |p: &str| std::fs::read_to_string(p).is_ok_and(|v| v.trim() == "1");
    let v2 = cg.join("cgroup.controllers").exists();
    let fields: Vec<(&str, bool)> = if v2 {
        let controllers =
            std::fs::read_to_string(cg.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        vec![
            ("MemoryLimit", has("memory")),
            ("KernelMemory", false),
            ("KernelMemoryTCP", false),
            ("OomKillDisable", false),
            ("CPUCfsQuota", has("cpu")),
            ("CPUCfsPeriod", has("cpu")),
            ("CPUShares", has("cpu")),
            ("CPUSet", has("cpuset")),
            ("PidsLimit", has("pids")),
        ]
    } else {
        let file = |c: &str, f: &str| cg.join(c).join(f).exists();
        vec![
            ("MemoryLimit", cg.join("memory").is_dir()),
            ("SwapLimit", file("memory", "memory.memsw.limit_in_bytes")),
            ("KernelMemory", file("memory", "memory.kmem.limit_in_bytes")),
            (
                "KernelMemoryTCP",
                file("memory", "memory.kmem.tcp.limit_in_bytes"),
            ),
            ("OomKillDisable", file("memory", "memory.oom_control")),
            ("CPUCfsQuota", file("cpu", "cpu.cfs_quota_us")),
            ("CPUCfsPeriod", file("cpu", "cpu.cfs_quota_us")),
            ("CPUShares", file("cpu", "cpu.shares")),
            ("CPUSet", cg.join("cpuset").is_dir()),
            ("PidsLimit", cg.join("pids").is_dir()),
        ]
    };
    let mut fields = fields;
    fields.push(("IPv4Forwarding", proc_on("/proc/sys/net/ipv4/ip_forward")));
    fields.push((
        "BridgeNfIptables",
        proc_on("/proc/sys/net/bridge/bridge-nf-call-iptables"),
    ));
    fields.push((
        "BridgeNfIP6tables",
        proc_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
    ));
    let off = |name: &str| fields.iter().any(|(f, v)| *f == name && !v);
    let mut warnings = Vec::new();
    for (field, v1_only, warning) in [
        ("MemoryLimit", false, "WARNING: No memory limit support"),
        ("SwapLimit", false, "WARNING: No swap limit support"),
        (
            "KernelMemoryTCP",
            true,
            "WARNING: No kernel memory TCP limit support",
        ),
        (
            "OomKillDisable",
            true,
            "WARNING: No oom kill disable support",
        ),
        ("CPUCfsQuota", false, "WARNING: No cpu cfs quota support"),
        ("CPUCfsPeriod", false, "WARNING: No cpu cfs period support"),
        ("CPUShares", false, "WARNING: No cpu shares support"),
        ("CPUSet", false, "WARNING: No cpuset support"),
    ] {
        if off(field) && !(v1_only && v2) {
            warnings.push(warning);
        }
    }
    if !v2 {
        for (file, warning) in [
            (
                "blkio.throttle.read_bps_device",
                "WARNING: No blkio throttle.read_bps_device support",
            ),
            (
                "blkio.throttle.write_bps_device",
                "WARNING: No blkio throttle.write_bps_device support",
            ),
            (
                "blkio.throttle.read_iops_device",
                "WARNING: No blkio throttle.read_iops_device support",
            ),
            (
                "blkio.throttle.write_iops_device",
                "WARNING: No blkio throttle.write_iops_device support",
            ),
        ] {
            if !cg.join("blkio").join(file).exists() {
                warnings.push(warning);
            }
        }
    }
    for (field, warning) in [
        ("IPv4Forwarding", "WARNING: IPv4 forwarding is disabled"),
        (
            "BridgeNfIptables",
            "WARNING: bridge-nf-call-iptables is disabled",
        ),
        (
            "BridgeNfIP6tables",
            "WARNING: bridge-nf-call-ip6tables is disabled",
        ),
    ] {
        if off(field) {
            warnings.push(warning);
        }
    }
    (fields, warnings)
}

#[test]
fn docker_info_shows_swarm_mirrors_and_what_the_hosts_cgroups_offer() -> Result<()> {
    require_root();
    let berthd = Berthd::start_with_config(
        r#"
        [registries."docker.io"]
        mirrors = ["mirror.example:5000", "http://127.0.0.1:5999"]
        [registries."127.0.0.1:5000"]
        insecure = true
        "#,
    )?;
    let out = docker("/usr/bin/docker", &berthd).arg("info").output()?;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // dockerd without swarm mode: one line, no node details.
    assert!(
        stdout.contains("\n Swarm: inactive\n Runtimes: "),
        "{stdout}"
    );
    assert!(!stdout.contains("NodeID"), "{stdout}");
    // Hub mirrors as dockerd lists its registry-mirrors; insecure registries by name.
    assert!(
        stdout.contains(
            " Registry Mirrors:\n  https://mirror.example:5000/\n  http://127.0.0.1:5999/\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(" Insecure Registries:\n  127.0.0.1:5000\n  127.0.0.0/8\n"),
        "{stdout}"
    );

    // Each feature as dockerd sees this host, and exactly dockerd's warnings on stderr.
    let (fields, warnings) = dockerd_view_of_this_host();
    let template: Vec<String> = fields
        .iter()
        .map(|(f, _)| format!("{{{{.{f}}}}}"))
        .collect();
    let values =
        run_ok(docker("/usr/bin/docker", &berthd).args(["info", "-f", &template.join(" ")]))?;
    let expected: Vec<String> = fields.iter().map(|(_, v)| v.to_string()).collect();
    assert_eq!(values.trim(), expected.join(" "), "{fields:?}");
    let expected_stderr = if warnings.is_empty() {
        String::new()
    } else {
        warnings.join("\n") + "\n"
    };
    assert_eq!(stderr, expected_stderr);
    Ok(())
}
