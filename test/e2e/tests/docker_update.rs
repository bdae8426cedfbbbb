//! `POST /containers/{id}/update` through Debian's docker 20.10 client, berth's CLI
//! and the Python SDK: new limits seen in the running container's cgroup files,
//! kept in inspect and across a restart; bad updates refused with nothing changed.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};

/// The container's cgroup file `file` of v1 controller `ctrl` (or its v2 twin).
fn cgroup(berthd: &Berthd, name: &str, ctrl: &str, file: &str) -> Result<String> {
    let id = run_ok(berthd.docker().args(["inspect", "-f", "{{.Id}}", name]))?;
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(
        berthd
            .root()
            .join("containers")
            .join(id.trim())
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
    let path = if v1.exists() {
        v1
    } else {
        let twin = match file {
            "memory.limit_in_bytes" => "memory.max",
            "cpu.cfs_quota_us" => "cpu.max",
            "cpu.shares" => "cpu.weight",
            "cpuset.cpus" => "cpuset.cpus",
            other => other,
        };
        PathBuf::from("/sys/fs/cgroup").join(&rel).join(twin)
    };
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("{}", path.display()))?
        .trim()
        .to_string())
}

fn inspect(berthd: &Berthd, name: &str, format: &str) -> Result<String> {
    Ok(
        run_ok(berthd.docker().args(["inspect", "-f", format, name]))?
            .trim()
            .to_string(),
    )
}

#[test]
fn docker_cli_updates_a_running_container() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "up",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    assert_eq!(
        cgroup(&berthd, "up", "memory", "memory.limit_in_bytes")?,
        "67108864"
    );

    let out = run_ok(berthd.docker().args([
        "update",
        "--memory",
        "128m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "20",
        "--cpuset-cpus",
        "0",
        "--restart",
        "on-failure:2",
        "up",
    ]))?;
    assert_eq!(out.trim(), "up");
    assert_eq!(
        cgroup(&berthd, "up", "memory", "memory.limit_in_bytes")?,
        "134217728"
    );
    assert_eq!(cgroup(&berthd, "up", "cpu", "cpu.cfs_quota_us")?, "50000");
    assert_eq!(cgroup(&berthd, "up", "cpu", "cpu.shares")?, "512");
    assert_eq!(cgroup(&berthd, "up", "pids", "pids.max")?, "20");
    assert_eq!(cgroup(&berthd, "up", "cpuset", "cpuset.cpus")?, "0");
    assert_eq!(
        inspect(
            &berthd,
            "up",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpusetCpus}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        )?,
        "134217728 500000000 512 20 0 on-failure:2"
    );

    // Refused, naming why; the cgroup keeps its limit.
    let (code, _, err) = run(berthd.docker().args(["update", "--memory", "1m", "up"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let (code, _, err) = run(berthd
        .docker()
        .args(["update", "--blkio-weight", "300", "up"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("BlkioWeight"), "{err}");
    assert_eq!(
        cgroup(&berthd, "up", "memory", "memory.limit_in_bytes")?,
        "134217728"
    );
    let (code, _, err) = run(berthd
        .docker()
        .args(["update", "--memory", "64m", "nosuch"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container"), "{err}");

    // A stopped container's update holds at its next start; berth's CLI does the same.
    run_ok(berthd.docker().args(["stop", "-t", "0", "up"]))?;
    let out =
        run_ok(
            berthd
                .berth()?
                .args(["update", "--memory", "96m", "--pids-limit", "-1", "up"]),
        )?;
    assert_eq!(out.trim(), "up");
    run_ok(berthd.docker().args(["start", "up"]))?;
    assert_eq!(
        cgroup(&berthd, "up", "memory", "memory.limit_in_bytes")?,
        "100663296"
    );
    assert_eq!(cgroup(&berthd, "up", "pids", "pids.max")?, "max");
    assert_eq!(cgroup(&berthd, "up", "cpu", "cpu.cfs_quota_us")?, "50000");

    // --rm containers keep no restart policy.
    run_ok(berthd.docker().args([
        "run", "-d", "--rm", "--name", "tmp", "busybox", "sleep", "1000",
    ]))?;
    let (code, _, err) = run(berthd
        .docker()
        .args(["update", "--restart", "always", "tmp"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("AutoRemove"), "{err}");
    Ok(())
}

#[test]
fn python_sdk_updates_limits() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
ctr = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-up", mem_limit="64m")
answer = ctr.update(mem_limit="100m", cpu_shares=256, restart_policy={"Name": "always"})
assert answer == {"Warnings": None}, answer
ctr.reload()
hc = ctr.attrs["HostConfig"]
assert hc["Memory"] == 100 << 20 and hc["CpuShares"] == 256, hc
assert hc["RestartPolicy"]["Name"] == "always", hc
try:
    ctr.update(mem_limit="1m")
    raise SystemExit("a 1 MB limit was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400 and "6MB" in str(e), e
print(ctr.id)
"#;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("update.py");
    std::fs::write(&path, script)?;
    let out = run_ok(Command::new("python3").arg(&path).arg(berthd.docker_host()))
        .with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(out.trim().len(), 64, "{out}");
    assert_eq!(
        cgroup(&berthd, "sdk-up", "memory", "memory.limit_in_bytes")?,
        "104857600"
    );
    assert_eq!(cgroup(&berthd, "sdk-up", "cpu", "cpu.shares")?, "256");
    Ok(())
}
