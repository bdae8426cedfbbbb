//! Containers through berthd's Docker API: the same scenarios through `berth` and
//! through Debian's docker 20.10 client, checked from inside the containers.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};

/// Polls `f` until it returns true, for at most `secs` seconds.
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

#[test]
fn run_logs_ps_inspect_stop_rm_through_berth() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;

    // Foreground: output on the right streams, the container's exit code, --rm.
    let (code, out, err) = run(berthd.berth()?.args([
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]))?;
    assert_eq!((code, out.as_str()), (3, "out\n"), "stderr: {err}");
    assert!(err.contains("err"), "{err}");
    let all = run_ok(berthd.berth()?.args(["ps", "-aq"]))?;
    assert!(all.trim().is_empty(), "--rm left {all}");

    // Detached, with env, workdir, user, labels and limits seen from inside.
    let script = "echo $FOO; pwd; id -u; \
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
        cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
        ls /sys/class/net; sleep 1000";
    let id = run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "33",
        "--label",
        "app=web",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "busybox",
        "sh",
        "-c",
        script,
    ]))?;
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let mut logs = String::new();
    eventually(10, "seven lines of logs", || {
        logs = run_ok(berthd.berth()?.args(["logs", "web"]))?;
        Ok(logs.lines().count() >= 7)
    })?;
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        &lines[..5],
        ["bar", "/tmp", "33", "67108864", "50"],
        "{logs}"
    );
    assert_eq!(
        &lines[5..7],
        ["eth0", "lo"],
        "the default bridge network: its eth0 and loopback: {logs}"
    );

    let ps = run_ok(berthd.berth()?.arg("ps"))?;
    assert!(ps.starts_with("CONTAINER ID   IMAGE     COMMAND"), "{ps}");
    assert!(ps.contains(" web\n") && ps.contains("Up "), "{ps}");
    let by_label = run_ok(
        berthd
            .berth()?
            .args(["ps", "-q", "--filter", "label=app=web"]),
    )?;
    assert_eq!(by_label.trim(), &id[..12]);
    let none = run_ok(
        berthd
            .berth()?
            .args(["ps", "-q", "--filter", "label=app=db"]),
    )?;
    assert!(none.trim().is_empty(), "{none}");
    let inspect = run_ok(berthd.berth()?.args([
        "inspect",
        "-f",
        "{{.State.Status}} {{.Config.User}} {{.Name}}",
        &id[..6],
    ]))?;
    assert_eq!(inspect.trim(), "running 33 /web");

    // The same container through the docker CLI.
    let names = run_ok(
        berthd
            .docker()
            .args(["ps", "--format", "{{.Names}} {{.Status}}"]),
    )?;
    assert!(names.starts_with("web Up"), "{names}");
    let running = run_ok(berthd.docker().args([
        "inspect",
        "-f",
        "{{.State.Running}} {{.HostConfig.Memory}}",
        "web",
    ]))?;
    assert_eq!(running.trim(), "true 67108864");
    let dlogs = run_ok(berthd.docker().args(["logs", "web"]))?;
    assert!(dlogs.starts_with("bar\n/tmp\n33\n"), "{dlogs}");

    // A name is taken once; errors read like docker's.
    let (code, _, err) = run(berthd
        .berth()?
        .args(["run", "-d", "--name", "web", "busybox", "true"]))?;
    assert_eq!(code, 125);
    assert!(
        err.contains("Conflict. The container name \"/web\" is already in use"),
        "{err}"
    );
    let (code, _, err) = run(berthd.berth()?.args(["rm", "web"]))?;
    assert_eq!(code, 1);
    assert!(
        err.contains("You cannot remove a running container"),
        "{err}"
    );

    // sh as PID 1 ignores SIGTERM: stop kills it after the timeout (137).
    let t0 = Instant::now();
    run_ok(berthd.berth()?.args(["stop", "-t", "1", "web"]))?;
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        t0.elapsed()
    );
    let state = run_ok(berthd.berth()?.args([
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "web",
    ]))?;
    assert_eq!(state.trim(), "exited 137");
    let ps = run_ok(
        berthd
            .berth()?
            .args(["ps", "-a", "--format", "{{.Names}}: {{.Status}}"]),
    )?;
    assert!(ps.starts_with("web: Exited (137)"), "{ps}");
    // Logs outlive the process.
    assert_eq!(
        run_ok(berthd.berth()?.args(["logs", "--tail", "1", "web"]))?,
        "lo\n"
    );
    run_ok(berthd.berth()?.args(["rm", "web"]))?;
    let (code, _, err) = run(berthd.berth()?.args(["inspect", "web"]))?;
    assert_eq!(code, 1);
    assert!(err.contains("No such container: web"), "{err}");

    // No command anywhere: docker's message and exit code.
    let (code, _, err) = run(berthd.berth()?.args(["run", "busybox"]))?;
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("No command specified"), "{err}");
    Ok(())
}

#[test]
fn docker_cli_runs_waits_and_removes() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let id = run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "d1",
        "-e",
        "A=1",
        "busybox",
        "sh",
        "-c",
        "echo a=$A; exit 3",
    ]))?;
    assert_eq!(id.trim().len(), 64);
    let code = run_ok(berthd.docker().args(["wait", "d1"]))?;
    assert_eq!(code.trim(), "3");
    assert_eq!(run_ok(berthd.docker().args(["logs", "d1"]))?, "a=1\n");
    let st = run_ok(berthd.docker().args([
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "d1",
    ]))?;
    assert_eq!(st.trim(), "exited 3");
    // Start again: the same container runs once more.
    run_ok(berthd.docker().args(["start", "d1"]))?;
    assert_eq!(run_ok(berthd.docker().args(["wait", "d1"]))?.trim(), "3");
    assert_eq!(run_ok(berthd.docker().args(["logs", "d1"]))?, "a=1\na=1\n");
    run_ok(berthd.docker().args(["rm", "d1"]))?;
    let (code, _, err) = run(berthd.docker().args(["rm", "d1"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container: d1"), "{err}");

    // kill with a signal name; pause/unpause; top lists the process.
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"]),
    )?;
    let top = run_ok(berthd.docker().args(["top", "sleeper"]))?;
    assert!(top.contains("sleep 1000"), "{top}");
    run_ok(berthd.docker().args(["pause", "sleeper"]))?;
    let st = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.Status}}", "sleeper"]),
    )?;
    assert_eq!(st.trim(), "paused");
    run_ok(berthd.docker().args(["unpause", "sleeper"]))?;
    run_ok(berthd.docker().args(["kill", "-s", "KILL", "sleeper"]))?;
    assert_eq!(
        run_ok(berthd.docker().args(["wait", "sleeper"]))?.trim(),
        "137"
    );
    run_ok(berthd.docker().args(["rename", "sleeper", "dreamer"]))?;
    let ps = run_ok(berthd.docker().args(["ps", "-a", "--format", "{{.Names}}"]))?;
    assert_eq!(ps.trim(), "dreamer");
    let pruned = run_ok(berthd.docker().args(["container", "prune", "-f"]))?;
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert!(run_ok(berthd.docker().args(["ps", "-aq"]))?
        .trim()
        .is_empty());
    Ok(())
}

#[test]
fn restart_policies_are_enforced() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]))?;
    eventually(20, "two restarts then a final exit", || {
        let s = run_ok(berthd.berth()?.args([
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
            "flaky",
        ]))?;
        Ok(s.trim() == "exited 2 1")
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let s = run_ok(
        berthd
            .berth()?
            .args(["inspect", "-f", "{{.RestartCount}}", "flaky"]),
    )?;
    assert_eq!(s.trim(), "2", "no third restart");
    assert_eq!(
        run_ok(berthd.berth()?.args(["logs", "flaky"]))?,
        "run\nrun\nrun\n"
    );

    // `always` restarts a clean exit too; a user's stop ends it.
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]))?;
    eventually(20, "an always container restarting", || {
        let s = run_ok(
            berthd
                .berth()?
                .args(["inspect", "-f", "{{.RestartCount}}", "loop"]),
        )?;
        Ok(s.trim().parse::<u32>().unwrap_or(0) >= 2)
    })?;
    run_ok(berthd.berth()?.args(["stop", "loop"]))?;
    let a = run_ok(berthd.berth()?.args([
        "inspect",
        "-f",
        "{{.State.Status}} {{.RestartCount}}",
        "loop",
    ]))?;
    std::thread::sleep(Duration::from_secs(1));
    let b = run_ok(berthd.berth()?.args([
        "inspect",
        "-f",
        "{{.State.Status}} {{.RestartCount}}",
        "loop",
    ]))?;
    assert!(a.starts_with("exited"), "{a}");
    assert_eq!(a, b, "a stopped container stays stopped");

    // After a daemon restart, `always` brings a stopped-by-exit container back, and
    // `unless-stopped` keeps a user's stop.
    berthd_restart_keeps_policies(berthd)
}

fn berthd_restart_keeps_policies(mut berthd: Berthd) -> Result<()> {
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "us",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    run_ok(berthd.berth()?.args(["stop", "-t", "0", "us"]))?;
    berthd.restart()?;
    eventually(10, "`always` container restarted by the daemon", || {
        let s = run_ok(
            berthd
                .berth()?
                .args(["inspect", "-f", "{{.State.Status}}", "loop"]),
        )?;
        Ok(s.trim() == "running"
            || s.trim() == "exited" && {
                let c =
                    run_ok(
                        berthd
                            .berth()?
                            .args(["inspect", "-f", "{{.RestartCount}}", "loop"]),
                    )?;
                c.trim().parse::<u32>().unwrap_or(0) > 2
            })
    })?;
    let us = run_ok(
        berthd
            .berth()?
            .args(["inspect", "-f", "{{.State.Status}}", "us"]),
    )?;
    assert_eq!(us.trim(), "exited", "unless-stopped keeps the user's stop");
    Ok(())
}
