//! Create fields berth used to drop, now applied (or refused by name), through Debian's
//! docker 20.10 CLI and `berth`, checked from inside the containers: `--device`,
//! `--ulimit`, `--group-add`, `--init`, `--oom-kill-disable`; and a field berth does
//! not apply refused by name through the API.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};

/// Runs `script` detached in busybox with `flags`, waits for it and returns its exit
/// code and output.
fn run_script(
    mut cli: Command,
    berthd: &Berthd,
    name: &str,
    flags: &[&str],
    script: &str,
) -> Result<(String, String)> {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let (code, out, err) = run(cli.args(&args))?;
    if code != 0 {
        bail!("{name}: run failed ({code}): {out}{err}");
    }
    let waited = run_ok(berthd.docker().args(["wait", name]))?;
    let logs = run_ok(berthd.docker().args(["logs", name]))?;
    run_ok(berthd.docker().args(["rm", name]))?;
    Ok((waited.trim().to_string(), logs))
}

fn clients(berthd: &Berthd) -> Result<[(&'static str, Command); 2]> {
    Ok([("docker", berthd.docker()), ("berth", berthd.berth()?)])
}

fn nothing_left(berthd: &Berthd) -> Result<()> {
    let left = run_ok(berthd.docker().args(["ps", "-aq"]))?;
    assert!(left.trim().is_empty(), "containers left: {left}");
    Ok(())
}

#[test]
fn devices_are_made_and_allowed_as_asked() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for (name, cli) in clients(&berthd)? {
        let (code, logs) = run_script(
            cli,
            &berthd,
            &format!("dev-{name}"),
            &["--device", "/dev/null:/dev/xnull"],
            "ls -l /dev/xnull; echo hi > /dev/xnull && echo wrote; cat /dev/xnull; echo end",
        )?;
        assert_eq!(code, "0", "{name}: {logs}");
        assert!(logs.starts_with("crw-rw-rw-"), "{name}: {logs}");
        assert!(
            logs.contains("1,   3") && logs.contains("/dev/xnull"),
            "{name}: {logs}"
        );
        assert!(logs.contains("wrote\nend"), "{name}: {logs}");
    }
    // A device outside the default rules, read-only in the device cgroup: reading is
    // allowed, writing is not (the node is there either way).
    if std::path::Path::new("/dev/fuse").exists() {
        let (code, logs) = run_script(
            berthd.docker(),
            &berthd,
            "dev-fuse",
            &["--device", "/dev/fuse:/dev/xfuse:r"],
            "exec 3</dev/xfuse && echo read-ok; (exec 4>/dev/xfuse) 2>&1 && echo write-ok; ls /dev/fuse 2>&1; true",
        )?;
        assert_eq!(code, "0", "{logs}");
        assert!(logs.contains("read-ok"), "{logs}");
        assert!(
            !logs.contains("write-ok") && logs.contains("ermitted"),
            "{logs}"
        );
        assert!(logs.contains("No such file"), "only the asked path: {logs}");
    } else {
        eprintln!("skipped: the device cgroup rule (no /dev/fuse on this host)");
    }
    for mut cli in [berthd.docker(), berthd.berth()?] {
        let (code, _, err) = run(cli.args(["create", "--device", "/dev/nope", "busybox", "true"]))?;
        assert_ne!(code, 0, "{err}");
        assert!(
            err.contains("error gathering device information while adding custom device \"/dev/nope\": no such file or directory"),
            "{err}"
        );
    }
    nothing_left(&berthd)
}

#[test]
fn ulimits_are_set_and_an_impossible_one_is_refused() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for (name, cli) in clients(&berthd)? {
        let (code, logs) = run_script(
            cli,
            &berthd,
            &format!("ulimit-{name}"),
            &["--ulimit", "nofile=1024:2048", "--ulimit", "core=0"],
            "ulimit -n; grep -E 'open files|core file' /proc/self/limits",
        )?;
        assert_eq!(code, "0", "{name}: {logs}");
        let lines: Vec<Vec<&str>> = logs
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["1024"], "{name}: {logs}");
        assert!(
            lines
                .iter()
                .any(|l| l[..] == ["Max", "open", "files", "1024", "2048", "files"]),
            "{name}: {logs}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l[..] == ["Max", "core", "file", "size", "0", "0", "bytes"]),
            "{name}: {logs}"
        );
    }
    // Above berthd's own hard limit without CAP_SYS_RESOURCE: refused at create, by name.
    let status = std::fs::read_to_string("/proc/self/status")?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let hard = run_ok(Command::new("sh").args(["-c", "ulimit -Hn"]))?;
    let hard: u64 = hard.trim().parse().unwrap_or(u64::MAX);
    if cap_eff & (1 << 24) == 0 && hard < 1 << 20 {
        for mut cli in [berthd.docker(), berthd.berth()?] {
            let (code, _, err) = run(cli.args([
                "create",
                "--ulimit",
                &format!("nofile=1024:{}", hard + 1),
                "busybox",
                "true",
            ]))?;
            assert_ne!(code, 0, "{err}");
            assert!(
                err.contains(&format!(
                    "ulimit nofile: hard limit {} is above this host's {hard}",
                    hard + 1
                )) && err.contains("CAP_SYS_RESOURCE"),
                "{err}"
            );
        }
    } else {
        eprintln!("skipped: the over-limit refusal (berthd can raise its hard limits here)");
    }
    let (code, _, err) =
        run(berthd
            .docker()
            .args(["create", "--ulimit", "nofiles=1", "busybox", "true"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("nofiles"), "{err}");
    nothing_left(&berthd)
}

#[test]
fn added_groups_are_joined() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for (name, cli) in clients(&berthd)? {
        let (code, logs) = run_script(
            cli,
            &berthd,
            &format!("groups-{name}"),
            &["--group-add", "1234", "-u", "33"],
            "id; grep Groups /proc/self/status",
        )?;
        assert_eq!(code, "0", "{name}: {logs}");
        assert!(logs.contains("1234"), "{name}: {logs}");
        let groups = logs
            .lines()
            .find(|l| l.starts_with("Groups:"))
            .unwrap_or_default();
        assert!(
            groups.split_whitespace().any(|g| g == "1234"),
            "{name}: {logs}"
        );
    }
    let (code, _, err) =
        run(berthd
            .docker()
            .args(["create", "--group-add", "nosuchgroup", "busybox", "true"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("Unable to find group nosuchgroup"), "{err}");
    nothing_left(&berthd)
}

#[test]
fn init_is_pid_1_passes_the_exit_code_reaps_and_forwards_signals() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for (name, cli) in clients(&berthd)? {
        let (code, logs) = run_script(
            cli,
            &berthd,
            &format!("init-{name}"),
            &["--init"],
            "tr '\\0' ' ' </proc/1/cmdline; echo; echo me=$$; \
             (sleep 0.2 &); sleep 1; \
             grep -l 'State:.*Z' /proc/[0-9]*/status 2>/dev/null || echo no-zombies; exit 3",
        )?;
        assert_eq!(code, "3", "{name}: {logs}");
        assert!(
            logs.starts_with("/sbin/docker-init -- sh -c "),
            "{name}: {logs}"
        );
        assert!(
            !logs.contains("me=1\n"),
            "{name}: the command is not PID 1: {logs}"
        );
        assert!(logs.contains("no-zombies"), "{name}: {logs}");
    }
    // `sleep` as PID 1 ignores SIGTERM and waits out the stop timeout; under the init
    // it gets the signal and the stop is prompt, with sleep's status.
    run_ok(berthd.docker().args([
        "run", "-d", "--name", "sleeper", "--init", "busybox", "sleep", "1000",
    ]))?;
    let started = Instant::now();
    run_ok(berthd.docker().args(["stop", "-t", "20", "sleeper"]))?;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let code = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.ExitCode}}", "sleeper"]),
    )?;
    assert_eq!(code.trim(), "143");
    run_ok(berthd.docker().args(["rm", "sleeper"]))?;
    nothing_left(&berthd)
}

#[test]
fn oom_kill_disable_is_applied_or_discarded_as_docker_does() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let v1 = !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && std::path::Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists();
    for (name, mut cli) in clients(&berthd)? {
        let container = format!("oom-{name}");
        let (code, _, err) = run(cli.args([
            "run",
            "-d",
            "--name",
            &container,
            "--oom-kill-disable",
            "busybox",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.oom_control 2>&1",
        ]))?;
        assert_eq!(code, 0, "{name}: {err}");
        run_ok(berthd.docker().args(["wait", &container]))?;
        let logs = run_ok(berthd.docker().args(["logs", &container]))?;
        let kept = run_ok(berthd.docker().args([
            "inspect",
            "-f",
            "{{.HostConfig.OomKillDisable}}",
            &container,
        ]))?;
        if v1 {
            assert!(logs.contains("oom_kill_disable 1"), "{name}: {logs}");
            assert_eq!(kept.trim(), "true", "{name}");
            assert!(
                err.contains(
                    "WARNING: OOM killer is disabled for the container, but no memory limit is set"
                ),
                "{name}: {err}"
            );
        } else {
            assert!(
                err.contains("WARNING: Your kernel does not support OomKillDisable. OomKillDisable discarded."),
                "{name}: {err}"
            );
            assert_eq!(kept.trim(), "false", "{name}");
        }
        run_ok(berthd.docker().args(["rm", &container]))?;
    }
    nothing_left(&berthd)
}

#[test]
fn a_field_berth_does_not_apply_is_refused_by_name() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let post = |body: &str| -> Result<String> {
        run_ok(Command::new("curl").args([
            "-s",
            "-w",
            " %{http_code}",
            "--unix-socket",
            &berthd.docker_socket().to_string_lossy(),
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            "http://localhost/v1.41/containers/create",
        ]))
    };
    let out = post(
        r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"CpuRealtimePeriod": 1000}}"#,
    )?;
    assert!(out.ends_with(" 400"), "{out}");
    assert!(
        out.contains("HostConfig.CpuRealtimePeriod is not supported"),
        "{out}"
    );
    // Zero values, as the docker CLI sends them, are fine.
    let out = post(
        r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"CpuRealtimePeriod": 0, "Dns": [], "MemorySwappiness": -1}}"#,
    )?;
    assert!(out.ends_with(" 201"), "{out}");
    let id = out.split('"').nth(3).unwrap_or_default();
    run_ok(berthd.docker().args(["rm", id]))?;
    nothing_left(&berthd)
}
