//! `GET /containers/{id}/stats` through Debian's docker 20.10 client, berth's CLI and
//! the Python SDK, compared with the container's own cgroup files and its network
//! namespace's /proc/net/dev, read on the host.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};

/// The v1 (or v2) cgroup file `file` of controller `ctrl` of the container.
fn cgroup_file(berthd: &Berthd, id: &str, ctrl: &str, file: &str) -> Result<PathBuf> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(
        berthd
            .root()
            .join("containers")
            .join(id)
            .join("config.json"),
    )?)?;
    let rel = spec["linux"]["cgroupsPath"]
        .as_str()
        .context("no cgroupsPath")?
        .trim_start_matches('/')
        .to_string();
    let v1 = PathBuf::from("/sys/fs/cgroup")
        .join(ctrl)
        .join(&rel)
        .join(file);
    if v1.exists() {
        return Ok(v1);
    }
    let v2 = |f: &str| PathBuf::from("/sys/fs/cgroup").join(&rel).join(f);
    Ok(match file {
        "memory.limit_in_bytes" => v2("memory.max"),
        "memory.usage_in_bytes" => v2("memory.current"),
        other => v2(other),
    })
}

fn read_num(path: &PathBuf) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(text.trim().parse()?)
}

fn api_stats(berthd: &Berthd, name: &str, query: &str) -> Result<serde_json::Value> {
    let out = run_ok(Command::new("curl").args([
        "-sf",
        "--unix-socket",
        &berthd.docker_socket().display().to_string(),
        &format!("http://d/v1.41/containers/{name}/stats?{query}"),
    ]))?;
    Ok(serde_json::from_str(&out)?)
}

#[test]
fn stats_match_the_cgroup_and_the_netns() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let id = run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "web",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "busybox",
        "sh",
        "-c",
        "head -c 8000000 /dev/zero > /tmp/blob; sleep 1000",
    ]))?;
    let id = id.trim().to_string();
    let usage_file = cgroup_file(&berthd, &id, "memory", "memory.usage_in_bytes")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_num(&usage_file)? < 8_000_000 {
        if Instant::now() > deadline {
            bail!("the container did not write its blob");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));

    // The API's figures are the cgroup's.
    let cpu_file = cgroup_file(&berthd, &id, "cpuacct", "cpuacct.usage")?;
    let cpu_before = read_num(&cpu_file).unwrap_or(0);
    let s = api_stats(&berthd, "web", "stream=false")?;
    let usage_after = read_num(&usage_file)?;
    let cpu_after = read_num(&cpu_file).unwrap_or(u64::MAX);
    let total = s["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        cpu_before <= total && total <= cpu_after,
        "{cpu_before} {total} {cpu_after}"
    );
    assert!(
        s["precpu_stats"]["system_cpu_usage"].as_u64()
            < s["cpu_stats"]["system_cpu_usage"].as_u64(),
        "{s}"
    );
    assert!(s["cpu_stats"]["online_cpus"].as_u64() >= Some(1), "{s}");
    let usage = s["memory_stats"]["usage"].as_u64().unwrap_or(0);
    assert!(
        usage.abs_diff(usage_after) < 1 << 20,
        "{usage} vs {usage_after}"
    );
    assert_eq!(s["memory_stats"]["limit"], 64 << 20, "{s}");
    assert!(
        s["memory_stats"]["stats"]
            .as_object()
            .is_some_and(|m| m.len() > 5),
        "{s}"
    );
    assert_eq!(s["pids_stats"]["current"], 1, "{s}");
    assert_eq!(s["pids_stats"]["limit"], 50, "{s}");
    assert!(
        s["blkio_stats"]["io_service_bytes_recursive"].is_array(),
        "{s}"
    );
    assert_eq!(s["name"], "/web");
    // Networks: the container's own interfaces, as its namespace counts them.
    let pid = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.Pid}}", "web"]),
    )?;
    let dev = std::fs::read_to_string(format!("/proc/{}/net/dev", pid.trim()))?;
    let ifaces: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .filter(|n| n != "lo")
        .collect();
    let got: Vec<String> = s["networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(got, ifaces, "{s}");
    // one-shot: at once, no previous read.
    let one = api_stats(&berthd, "web", "stream=false&one-shot=true")?;
    assert!(
        one["precpu_stats"].get("system_cpu_usage").is_none(),
        "{one}"
    );
    assert_eq!(one["preread"], "0001-01-01T00:00:00Z");

    // docker's CLI table and templates.
    let table = run_ok(berthd.docker().args(["stats", "--no-stream"]))?;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&id[..12]) && lines[1].contains(" / 64MiB "),
        "{table}"
    );
    let row = run_ok(berthd.docker().args([
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemPerc}}",
        "web",
    ]))?;
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&fields[..2], ["web", "1"], "{row}");
    assert!(fields[2].ends_with('%'), "{row}");

    // berth's own CLI: the same table shape; -a adds a stopped container.
    run_ok(
        berthd
            .docker()
            .args(["create", "--name", "idle", "busybox", "true"]),
    )?;
    let ours = run_ok(berthd.berth()?.args(["stats", "--no-stream"]))?;
    let ours_lines: Vec<&str> = ours.lines().collect();
    assert_eq!(ours_lines.len(), 2, "{ours}");
    assert_eq!(
        ours_lines[0].split_whitespace().collect::<Vec<_>>(),
        lines[0].split_whitespace().collect::<Vec<_>>()
    );
    assert!(ours_lines[1].contains(" / 64MiB "), "{ours}");
    let all = run_ok(berthd.berth()?.args([
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.PIDs}}",
    ]))?;
    let mut all: Vec<&str> = all.lines().collect();
    all.sort();
    assert_eq!(all, ["idle 0", "web 1"]);
    Ok(())
}

#[test]
fn python_sdk_reads_stats_streamed_and_once() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
ctr = c.containers.run("busybox", ["sh", "-c", "while :; do :; done"], detach=True, name="spin",
                       mem_limit="32m")
once = ctr.stats(stream=False)
assert once["cpu_stats"]["cpu_usage"]["total_usage"] > 0, once
assert once["memory_stats"]["limit"] == 32 << 20, once
assert once["precpu_stats"]["cpu_usage"]["total_usage"] <= once["cpu_stats"]["cpu_usage"]["total_usage"]
reads = ctr.stats(stream=True, decode=True)
first, second = next(reads), next(reads)
reads.close()
assert second["precpu_stats"]["cpu_usage"] == first["cpu_stats"]["cpu_usage"], (first, second)
# A busy loop over about a second: close to one CPU's worth.
cpu = second["cpu_stats"]["cpu_usage"]["total_usage"] - first["cpu_stats"]["cpu_usage"]["total_usage"]
system = second["cpu_stats"]["system_cpu_usage"] - first["cpu_stats"]["system_cpu_usage"]
pct = cpu / system * second["cpu_stats"]["online_cpus"] * 100
assert 30 < pct <= 105, pct
shot = ctr.stats(stream=False, one_shot=True)
assert "system_cpu_usage" not in shot["precpu_stats"], shot
ctr.remove(force=True)
print("ok")
"#;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("stats.py");
    std::fs::write(&path, script)?;
    let out = run_ok(Command::new("python3").arg(&path).arg(berthd.docker_host()))
        .with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(out.trim(), "ok");
    Ok(())
}
