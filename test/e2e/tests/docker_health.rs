//! Health checks through Debian's docker 20.10 client and the Python SDK: a failing
//! check goes starting → unhealthy, a fixed one healthy, seen in `ps`, inspect and
//! events; checks go on after a berthd restart; a bad interval creates nothing.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};

fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out waiting for {what}")
}

fn health(berthd: &Berthd, name: &str) -> Result<serde_json::Value> {
    let out = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{json .State.Health}}", name]),
    )?;
    Ok(serde_json::from_str(out.trim())?)
}

fn ps_status(berthd: &Berthd, name: &str) -> Result<String> {
    let all = run_ok(
        berthd
            .docker()
            .args(["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"]),
    )?;
    Ok(all
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")))
        .unwrap_or("")
        .to_string())
}

#[test]
fn docker_cli_sees_starting_unhealthy_and_healthy() -> Result<()> {
    require_root();
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let t0 = now();
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "echo checking; exit 1",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        // Starting for the first seconds (the first check comes at the start
        // interval, 5 s by default), however slowly this busy machine runs the
        // commands below: the "starting" read is not a race.
        "--health-start-period",
        "2s",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    // Fails until /tmp/ok exists, made after a while: unhealthy, then healthy.
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "fixed",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sh",
        "-c",
        "sleep 2; touch /tmp/ok; sleep 1000",
    ]))?;
    let first = ps_status(&berthd, "sick")?;
    assert!(first.ends_with("(health: starting)"), "{first}");
    assert_eq!(health(&berthd, "sick")?["Status"], "starting");

    eventually(10, "sick to be unhealthy", || {
        Ok(ps_status(&berthd, "sick")?.ends_with("(unhealthy)"))
    })?;
    let h = health(&berthd, "sick")?;
    assert_eq!(h["Status"], "unhealthy", "{h}");
    assert!(h["FailingStreak"].as_u64() >= Some(2), "{h}");
    let log = h["Log"].as_array().context("no Log")?;
    assert!(!log.is_empty() && log.len() <= 5, "{h}");
    assert_eq!(log[0]["ExitCode"], 1, "{h}");
    assert_eq!(log[0]["Output"], "checking\n", "{h}");
    let check =
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{json .Config.Healthcheck}}", "sick"]),
        )?;
    let check: serde_json::Value = serde_json::from_str(check.trim())?;
    assert_eq!(
        check["Test"],
        serde_json::json!(["CMD-SHELL", "echo checking; exit 1"])
    );
    assert_eq!(check["Interval"], 300_000_000);

    eventually(15, "fixed to be healthy", || {
        Ok(ps_status(&berthd, "fixed")?.ends_with("(healthy)"))
    })?;
    let t1 = now();
    let events = run_ok(berthd.docker().args([
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Actor.Attributes.name}} {{.Action}}",
    ]))?;
    let events: Vec<&str> = events.lines().collect();
    assert!(
        events.contains(&"sick health_status: unhealthy"),
        "{events:?}"
    );
    let fixed: Vec<&&str> = events.iter().filter(|e| e.starts_with("fixed ")).collect();
    assert_eq!(
        fixed,
        [
            &"fixed health_status: unhealthy",
            &"fixed health_status: healthy"
        ],
        "{events:?}"
    );

    // The checks go on across a berthd restart.
    let before = health(&berthd, "sick")?["Log"]
        .as_array()
        .and_then(|l| l.last().cloned())
        .context("no log")?;
    berthd.restart()?;
    eventually(10, "a check after the restart", || {
        let last = health(&berthd, "sick")?["Log"]
            .as_array()
            .and_then(|l| l.last().cloned());
        Ok(last.is_some_and(|l| l["Start"] != before["Start"]))
    })?;
    assert_eq!(health(&berthd, "sick")?["Status"], "unhealthy");

    // A bad interval is refused and nothing is made.
    let (code, _, err) = run(berthd.docker().args([
        "create",
        "--name",
        "bad",
        "--health-cmd",
        "true",
        "--health-interval",
        "10us",
        "busybox",
    ]))?;
    assert_ne!(code, 0);
    assert!(
        err.contains("Interval in Healthcheck cannot be less than 1ms"),
        "{err}"
    );
    let all = run_ok(berthd.docker().args(["ps", "-a", "--format", "{{.Names}}"]))?;
    assert!(!all.contains("bad"), "{all}");
    // --no-healthcheck: no check, no Health.
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "plain",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "100",
    ]))?;
    let plain = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{json .State.Health}}", "plain"]),
    )?;
    assert_eq!(plain.trim(), "null");
    assert!(!ps_status(&berthd, "plain")?.contains('('));

    // berth's own flags send the same Healthcheck.
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "ours",
        "--health-cmd",
        "exit 0",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "100",
    ]))?;
    eventually(10, "ours to be healthy", || {
        let ps = run_ok(
            berthd
                .berth()?
                .args(["ps", "--format", "{{.Names}} {{.Status}}"]),
        )?;
        Ok(ps
            .lines()
            .any(|l| l.starts_with("ours ") && l.ends_with("(healthy)")))
    })?;
    let check =
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{json .Config.Healthcheck}}", "ours"]),
        )?;
    let check: serde_json::Value = serde_json::from_str(check.trim())?;
    assert_eq!(check["Test"], serde_json::json!(["CMD-SHELL", "exit 0"]));
    assert_eq!(
        (check["Interval"].as_i64(), check["Retries"].as_i64()),
        (Some(200_000_000), Some(2))
    );
    Ok(())
}

#[test]
fn python_sdk_healthcheck() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let script = r#"
import sys, time, docker
c = docker.DockerClient(base_url=sys.argv[1])
ctr = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-health",
                       healthcheck={"test": ["CMD", "true"], "interval": 200_000_000,
                                    "timeout": 1_000_000_000, "retries": 1})
deadline = time.time() + 10
while time.time() < deadline:
    ctr.reload()
    if ctr.health == "healthy":
        break
    time.sleep(0.1)
assert ctr.health == "healthy", ctr.attrs["State"]
log = ctr.attrs["State"]["Health"]["Log"]
assert log[-1]["ExitCode"] == 0 and log[-1]["Start"] <= log[-1]["End"], log
slow = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-slow",
                        healthcheck={"test": ["CMD", "sleep", "5"], "interval": 200_000_000,
                                     "timeout": 300_000_000, "retries": 1})
deadline = time.time() + 10
while time.time() < deadline:
    slow.reload()
    if slow.health == "unhealthy":
        break
    time.sleep(0.1)
h = slow.attrs["State"]["Health"]
assert h["Status"] == "unhealthy", h
assert "exceeded timeout" in h["Log"][-1]["Output"], h
print("ok")
"#;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("health.py");
    std::fs::write(&path, script)?;
    let out = run_ok(Command::new("python3").arg(&path).arg(berthd.docker_host()))
        .with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(out.trim(), "ok");
    Ok(())
}

#[test]
fn an_images_healthcheck_runs_and_can_be_overridden_or_disabled() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let dir = tempfile::tempdir()?;
    let rootfs = dir.path().join("rootfs");
    berth_fixtures::busybox_rootfs(&rootfs)?;
    let tar = dir.path().join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    run_ok(
        berthd
            .berth()?
            .args([
                "import",
                "--change",
                "HEALTHCHECK --interval=200ms --retries=1 CMD test -f /etc/passwd",
            ])
            .arg(&tar)
            .arg("checked"),
    )?;
    let image = run_ok(berthd.docker().args([
        "image",
        "inspect",
        "-f",
        "{{json .Config.Healthcheck}}",
        "checked",
    ]))?;
    assert!(image.contains("test -f /etc/passwd"), "{image}");

    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "img", "checked", "sleep", "100"]),
    )?;
    // The container's own command over the image's, the image's interval kept.
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "mine",
        "--health-cmd",
        "exit 1",
        "checked",
        "sleep",
        "100",
    ]))?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "checked",
        "sleep",
        "100",
    ]))?;
    eventually(10, "img healthy and mine unhealthy", || {
        Ok(health(&berthd, "img")?["Status"] == "healthy"
            && health(&berthd, "mine")?["Status"] == "unhealthy")
    })?;
    let check =
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{json .Config.Healthcheck}}", "mine"]),
        )?;
    let check: serde_json::Value = serde_json::from_str(check.trim())?;
    assert_eq!(check["Test"], serde_json::json!(["CMD-SHELL", "exit 1"]));
    assert_eq!(check["Interval"], 200_000_000);
    let off = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{json .State.Health}}", "off"]),
    )?;
    assert_eq!(off.trim(), "null");
    Ok(())
}
