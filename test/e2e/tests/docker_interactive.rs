//! Interactive containers through real clients on a real pseudo-terminal: Debian's
//! docker 20.10 CLI, the newer docker client (28.x) where the machine has it, and
//! `berth`, each against a private berthd. `run -it` with a shell (type, read, resize,
//! exit code), detach with Ctrl-P Ctrl-Q and attach again, a foreground `run`'s output
//! and exit code, piped stdin, `exec` in its forms, `--sig-proxy`; then the API's
//! answers to bad input, and a client killed mid-attach.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::pty::PtyChild;
use berth_e2e::{require_root, run, run_ok, Berthd};

const T: Duration = Duration::from_secs(20);

/// Makes a client command talking to the test's berthd.
type MakeCommand<'a> = Box<dyn Fn() -> Command + 'a>;

/// The clients under test: a label (for container names) and how to make a command.
fn clients(berthd: &Berthd) -> Result<Vec<(&'static str, MakeCommand<'_>)>> {
    let berth = berthd.berth()?;
    let berth_path = berth.get_program().to_owned();
    let host = berthd.docker_host();
    let mut out: Vec<(&'static str, MakeCommand<'_>)> = vec![
        (
            "berth",
            Box::new(move || {
                let mut c = Command::new(&berth_path);
                c.env("DOCKER_HOST", &host);
                c
            }),
        ),
        ("docker20", Box::new(|| berthd.docker())),
    ];
    if berthd.docker_new().is_some() {
        out.push((
            "docker28",
            Box::new(|| {
                berthd
                    .docker_new()
                    .unwrap_or_else(|| Command::new("/usr/local/bin/docker"))
            }),
        ));
    } else {
        eprintln!("/usr/local/bin/docker is not installed: the 28.x client is not tested");
    }
    Ok(out)
}

fn daemon() -> Result<Berthd> {
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    Ok(berthd)
}

fn inspect(berthd: &Berthd, name: &str, format: &str) -> Result<String> {
    Ok(
        run_ok(berthd.docker().args(["inspect", "-f", format, name]))?
            .trim()
            .to_string(),
    )
}

fn eventually(what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if f()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out waiting for {what}")
}

/// Types `stty size` until the shell reports `want` (the resize travels CLI → berthd
/// → shim asynchronously).
fn stty_size_becomes(pty: &mut PtyChild, want: &str) -> Result<()> {
    for _ in 0..20 {
        pty.send(b"stty size\r")?;
        if pty.expect(want, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
    }
    bail!("stty size never said {want:?}:\n{}", pty.output())
}

/// Waits for `child` (whose stdin the caller closed) up to [`T`], then kills it: a
/// client with --sig-proxy outlives the SIGTERM a plain timeout would send.
fn finish(mut child: std::process::Child, what: &str) -> Result<(Option<i32>, String)> {
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not exit within {T:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    Ok((status.code(), out))
}

#[test]
fn run_it_shell_types_reads_resizes_and_exits_with_its_code() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    for (label, cli) in clients(&berthd)? {
        let mut cmd = cli();
        cmd.args([
            "run",
            "-it",
            "--rm",
            "--name",
            &format!("{label}-it"),
            "busybox",
            "sh",
        ]);
        let mut pty = PtyChild::spawn(cmd, 30, 100)?;
        pty.expect("built-in shell", T).with_context(|| label)?;
        pty.send(b"echo hi-$((1+1))\r")?;
        pty.expect("hi-2", T).with_context(|| label)?;
        stty_size_becomes(&mut pty, "30 100").with_context(|| label)?;
        pty.resize(41, 123)?;
        stty_size_becomes(&mut pty, "41 123").with_context(|| label)?;
        pty.send(b"exit 3\r")?;
        let status = pty.wait(T)?;
        assert_eq!(status.code(), Some(3), "{label}: {}", pty.output());
        eventually("--rm to remove the container", || {
            Ok(run(berthd.docker().args(["inspect", &format!("{label}-it")]))?.0 != 0)
        })
        .with_context(|| label)?;
    }
    Ok(())
}

#[test]
fn detach_keys_leave_the_container_running_and_attach_comes_back() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    for (label, cli) in clients(&berthd)? {
        let name = format!("{label}-det");
        let mut cmd = cli();
        cmd.args(["run", "-it", "--name", &name, "busybox", "sh"]);
        let mut pty = PtyChild::spawn(cmd, 24, 80)?;
        pty.expect("built-in shell", T).with_context(|| label)?;
        pty.send(b"\x10\x11")?;
        let status = pty.wait(T)?;
        assert_eq!(status.code(), Some(0), "{label}: {}", pty.output());
        assert_eq!(
            inspect(&berthd, &name, "{{.State.Running}}")?,
            "true",
            "{label}"
        );

        let mut cmd = cli();
        cmd.args(["attach", &name]);
        let mut pty = PtyChild::spawn(cmd, 24, 80)?;
        std::thread::sleep(Duration::from_millis(300));
        pty.send(b"echo back-$((2+3))\r")?;
        pty.expect("back-5", T).with_context(|| label)?;
        pty.send(b"exit 4\r")?;
        let status = pty.wait(T)?;
        assert_eq!(status.code(), Some(4), "{label}: {}", pty.output());
        assert_eq!(
            inspect(&berthd, &name, "{{.State.ExitCode}}")?,
            "4",
            "{label}"
        );
    }
    Ok(())
}

#[test]
fn custom_detach_keys() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    for (label, cli) in clients(&berthd)? {
        let name = format!("{label}-keys");
        let mut cmd = cli();
        cmd.args([
            "run",
            "-it",
            "--detach-keys",
            "ctrl-x,x",
            "--name",
            &name,
            "busybox",
            "sh",
        ]);
        let mut pty = PtyChild::spawn(cmd, 24, 80)?;
        pty.expect("built-in shell", T).with_context(|| label)?;
        // The default keys are only keys now: the session goes on.
        pty.send(b"\x10\x11echo still-$((1+6))\r")?;
        pty.expect("still-7", T).with_context(|| label)?;
        pty.send(b"\x18x")?;
        let status = pty.wait(T)?;
        assert_eq!(status.code(), Some(0), "{label}: {}", pty.output());
        assert_eq!(
            inspect(&berthd, &name, "{{.State.Running}}")?,
            "true",
            "{label}"
        );
    }
    Ok(())
}

#[test]
fn foreground_run_and_start_a_print_and_return_the_code() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    for (label, cli) in clients(&berthd)? {
        let (code, out, err) = run(cli().args(["run", "--rm", "busybox", "echo", "hi"]))?;
        assert_eq!((code, out.as_str()), (0, "hi\n"), "{label}: {err}");

        let script = "echo out; echo err >&2; exit 4";
        let (code, out, err) = run(cli()
            .args(["run", "--rm", "busybox", "sh", "-c", script])
            .stdin(Stdio::null()))?;
        assert_eq!(code, 4, "{label}: {err}");
        assert_eq!(out, "out\n", "{label}");
        assert_eq!(err, "err\n", "{label}");

        // start -a: the output and the exit code of a created container.
        let name = format!("{label}-start");
        run_ok(cli().args([
            "create",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "echo started; exit 2",
        ]))?;
        let (code, out, err) = run(cli().args(["start", "-a", &name]).stdin(Stdio::null()))?;
        assert_eq!((code, out.as_str()), (2, "started\n"), "{label}: {err}");
        run_ok(cli().args(["rm", &name]))?;
    }
    let left = run_ok(berthd.docker().args(["ps", "-aq"]))?;
    assert_eq!(left.trim(), "", "--rm left containers behind");
    Ok(())
}

#[test]
fn run_i_with_piped_stdin_ends_with_its_input() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    for (label, cli) in clients(&berthd)? {
        let mut child = cli()
            .args(["run", "-i", "--rm", "busybox", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(b"hi through stdin\n")?;
        let (code, out) = finish(child, &format!("{label} run -i with piped stdin"))?;
        assert_eq!(out, "hi through stdin\n", "{label}");
        assert_eq!(code, Some(0), "{label}");
    }
    Ok(())
}

#[test]
fn exec_in_its_forms() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    for (label, cli) in clients(&berthd)? {
        let name = format!("{label}-ex");
        run_ok(cli().args(["run", "-d", "--name", &name, "busybox", "sleep", "1000"]))?;

        let script = "echo $A; pwd; id -u";
        let out = run_ok(cli().args([
            "exec", "-w", "/tmp", "-e", "A=b", "-u", "1000", &name, "sh", "-c", script,
        ]))?;
        assert_eq!(out, "b\n/tmp\n1000\n", "{label}");

        let (code, _, err) = run(cli().args(["exec", &name, "sh", "-c", "exit 6"]))?;
        assert_eq!(code, 6, "{label}: {err}");

        run_ok(cli().args(["exec", "-d", &name, "sh", "-c", "echo x > /tmp/marker"]))?;
        eventually("the detached exec's file", || {
            Ok(run(cli().args(["exec", &name, "cat", "/tmp/marker"]))?.1 == "x\n")
        })
        .with_context(|| label)?;

        let mut child = cli()
            .args(["exec", "-i", &name, "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        child.stdin.take().context("stdin")?.write_all(b"piped\n")?;
        let (code, out) = finish(child, &format!("{label} exec -i with piped stdin"))?;
        assert_eq!((code, out.as_str()), (Some(0), "piped\n"), "{label}");

        let mut cmd = cli();
        cmd.args(["exec", "-it", &name, "sh"]);
        let mut pty = PtyChild::spawn(cmd, 33, 90)?;
        pty.expect("built-in shell", T).with_context(|| label)?;
        pty.send(b"tty\r")?;
        pty.expect("/dev/pts/", T).with_context(|| label)?;
        stty_size_becomes(&mut pty, "33 90").with_context(|| label)?;
        pty.resize(20, 70)?;
        stty_size_becomes(&mut pty, "20 70").with_context(|| label)?;
        pty.send(b"exit 5\r")?;
        let status = pty.wait(T)?;
        assert_eq!(status.code(), Some(5), "{label}: {}", pty.output());
    }
    Ok(())
}

#[test]
fn sig_proxy_passes_a_signal_to_the_container() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    for (label, cli) in clients(&berthd)? {
        let name = format!("{label}-sig");
        let script = r#"trap "exit 7" TERM; echo ready; while true; do sleep 0.1; done"#;
        let mut child = cli()
            .args(["run", "--name", &name, "busybox", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        assert_eq!(line, "ready\n", "{label}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let status = child.wait()?;
        assert_eq!(status.code(), Some(7), "{label}");
        assert_eq!(
            inspect(&berthd, &name, "{{.State.ExitCode}}")?,
            "7",
            "{label}"
        );
    }
    Ok(())
}

/// One request on berthd's socket: (status, body as text).
fn http(berthd: &Berthd, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut s = UnixStream::connect(berthd.docker_socket())?;
    s.set_read_timeout(Some(T))?;
    // One write: berthd may answer an unknown exec and close before reading a body
    // sent in a second write, which would then fail with EPIPE.
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn bad_input_gets_dockers_answers() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    let docker = |args: &[&str]| run(berthd.docker().args(args));
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "up", "busybox", "sleep", "1000"]),
    )?;
    run_ok(
        berthd
            .docker()
            .args(["create", "--name", "down", "busybox", "true"]),
    )?;
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "held", "busybox", "sleep", "1000"]),
    )?;
    run_ok(berthd.docker().args(["pause", "held"]))?;
    let down = inspect(&berthd, "down", "{{.Id}}")?;
    let held = inspect(&berthd, "held", "{{.Id}}")?;

    let exec = r#"{"Cmd": ["true"], "AttachStdout": true}"#;
    let (status, body) = http(&berthd, "POST", "/v1.41/containers/down/exec", exec)?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains(&format!("Container {down} is not running")),
        "{body}"
    );
    let (status, body) = http(&berthd, "POST", "/v1.41/containers/held/exec", exec)?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains(&format!(
            "Container {held} is paused, unpause the container before exec"
        )),
        "{body}"
    );
    let (code, _, err) = docker(&["exec", "down", "true"])?;
    assert_ne!(code, 0);
    assert!(err.contains("is not running"), "{err}");

    for (method, path) in [
        ("POST", "/v1.41/exec/nope/start"),
        ("GET", "/v1.41/exec/nope/json"),
        ("POST", "/v1.41/exec/nope/resize?h=1&w=1"),
    ] {
        let (status, body) = http(&berthd, method, path, "{}")?;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body.contains("No such exec instance: nope"),
            "{path}: {body}"
        );
    }

    // dockerd answers 200 to a resize of a container without a TTY (containerd
    // resizes no console and reports success), 409 when it is not running.
    let (status, body) = http(&berthd, "POST", "/v1.41/containers/up/resize?h=10&w=10", "")?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &berthd,
        "POST",
        "/v1.41/containers/down/resize?h=10&w=10",
        "",
    )?;
    assert_eq!(status, 409, "{body}");
    let (status, body) = http(&berthd, "POST", "/v1.41/containers/up/resize?h=x&w=10", "")?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(&berthd, "POST", "/v1.41/containers/nope/resize?h=1&w=1", "")?;
    assert_eq!(status, 404, "{body}");

    let (status, body) = http(
        &berthd,
        "POST",
        "/v1.41/containers/up/exec",
        r#"{"Cmd": []}"#,
    )?;
    assert_eq!(status, 400, "{body}");
    let bad_keys = r#"{"Cmd": ["true"], "DetachKeys": "ctrl-1"}"#;
    let (status, body) = http(&berthd, "POST", "/v1.41/containers/up/exec", bad_keys)?;
    assert_eq!(status, 400, "{body}");
    let path = "/v1.41/containers/up/attach?stream=1&stdout=1&detachKeys=ctrl-1";
    let (status, body) = http(&berthd, "POST", path, "")?;
    assert_eq!(status, 400, "{body}");

    // An exec's inspect while it runs and after.
    let (status, body) = http(
        &berthd,
        "POST",
        "/v1.41/containers/up/exec",
        r#"{"Cmd": ["sh", "-c", "exit 9"], "User": "1000", "Tty": false}"#,
    )?;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body)?["Id"]
        .as_str()
        .map(str::to_string)
        .context("Id")?;
    let (_, body) = http(&berthd, "GET", &format!("/v1.41/exec/{id}/json"), "")?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(v["Running"], false, "{v}");
    assert_eq!(v["ExitCode"], serde_json::Value::Null, "{v}");
    assert_eq!(v["ProcessConfig"]["entrypoint"], "sh", "{v}");
    assert_eq!(
        v["ProcessConfig"]["arguments"],
        serde_json::json!(["-c", "exit 9"]),
        "{v}"
    );
    assert_eq!(v["ProcessConfig"]["user"], "1000", "{v}");
    let (status, body) = http(
        &berthd,
        "POST",
        &format!("/v1.41/exec/{id}/start"),
        r#"{"Detach": true}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    eventually("the exec's exit code", || {
        let (_, body) = http(&berthd, "GET", &format!("/v1.41/exec/{id}/json"), "")?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok(v["ExitCode"] == 9 && v["Running"] == false)
    })?;
    let (status, body) = http(
        &berthd,
        "POST",
        &format!("/v1.41/exec/{id}/start"),
        r#"{"Detach": true}"#,
    )?;
    assert_eq!(status, 409, "{body}");
    Ok(())
}

/// berthd's open descriptors, its inotify ones left out: the engine's attach follows
/// the container's log through inotify and its follower outlives the attach until the
/// container writes again or stops (an engine matter, reported with issue 16).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy() != "anon_inode:inotify")
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_client_killed_mid_attach_leaves_the_container_and_no_leak() -> Result<()> {
    require_root();
    let berthd = daemon()?;
    let pid = berthd.pid().context("berthd's pid")?;
    run_ok(
        berthd
            .docker()
            .args(["run", "-dit", "--name", "victim", "busybox", "sh"]),
    )?;
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "quiet", "busybox", "sleep", "1000"]),
    )?;
    // Warm up whatever berthd opens once (the shim connection, the log reader).
    run_ok(berthd.docker().args(["exec", "victim", "true"]))?;
    let before = open_fds(pid);
    for (label, cli) in clients(&berthd)? {
        let mut cmd = cli();
        cmd.args(["attach", "victim"]);
        let mut pty = PtyChild::spawn(cmd, 24, 80)?;
        std::thread::sleep(Duration::from_millis(300));
        pty.send(b"echo alive-$((4+4))\r")?;
        pty.expect("alive-8", T).with_context(|| label)?;
        pty.child.kill()?;
        pty.child.wait()?;
        // A non-TTY attach without stdin, to a silent container.
        let mut quiet = cli()
            .args(["attach", "--no-stdin", "quiet"])
            .stdout(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(500));
        quiet.kill()?;
        quiet.wait()?;
    }
    assert_eq!(inspect(&berthd, "victim", "{{.State.Running}}")?, "true");
    assert_eq!(inspect(&berthd, "quiet", "{{.State.Running}}")?, "true");
    eventually("berthd to close what the attaches held", || {
        Ok(open_fds(pid) <= before)
    })
    .with_context(|| format!("berthd had {before} descriptors, has {}", open_fds(pid)))?;
    Ok(())
}
