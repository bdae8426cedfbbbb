//! The local driver's options through Debian's docker 20.10 client: a tmpfs volume
//! (`-o type=tmpfs -o device=tmpfs -o o=size=…,mode=…`) and a bind volume (`-o
//! type=none -o o=bind -o device=/path`) mounted while a container using them runs and
//! unmounted when the last one stops; removal never touches a bind's files; bad
//! options refused at create by name, a mount that fails refused at start with
//! nothing left mounted.

use std::path::Path;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

/// The filesystem type mounted exactly at `path` on the host, if any.
fn mounted_type(path: &Path) -> Option<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_string_lossy();
    table.lines().rev().find_map(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        (fields.get(4) == Some(&want.as_ref()))
            .then(|| fields.get(sep + 1).map(|s| s.to_string()))?
    })
}

/// Whether berthd has the container as exited.
fn exited(berthd: &Berthd, name: &str) -> bool {
    run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.Status}}", name]),
    )
    .is_ok_and(|s| s.trim() == "exited")
}

/// Whether `check` holds within 10 seconds.
fn eventually(check: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

#[test]
fn tmpfs_volumes_mount_while_used() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m,mode=1770",
        "tv",
    ]))?;
    let data = berthd.root().join("volumes/tv/_data");
    let opts = run_ok(berthd.docker().args([
        "volume",
        "inspect",
        "-f",
        "{{.Options.type}} {{.Options.device}} {{.Options.o}}",
        "tv",
    ]))?;
    assert_eq!(opts.trim(), "tmpfs tmpfs size=1m,mode=1770");
    assert_eq!(mounted_type(&data), None, "not mounted before use");

    for name in ["one", "two"] {
        run_ok(berthd.docker().args([
            "run", "-d", "--name", name, "-v", "tv:/t", "busybox", "sleep", "300",
        ]))?;
    }
    assert_eq!(mounted_type(&data).as_deref(), Some("tmpfs"));
    // The size and mode are the volume's; both containers share it.
    let out = run_ok(berthd.docker().args([
        "exec",
        "one",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts; stat -c %a /t; echo hi > /t/f",
    ]))?;
    assert!(out.contains(" /t tmpfs "), "{out}");
    assert!(out.contains("size=1024k"), "{out}");
    assert!(out.ends_with("1770\n"), "{out}");
    let out = run_ok(berthd.docker().args(["exec", "two", "cat", "/t/f"]))?;
    assert_eq!(out, "hi\n");
    let (code, _, _) = run(berthd.docker().args([
        "exec",
        "two",
        "dd",
        "if=/dev/zero",
        "of=/t/big",
        "bs=1024",
        "count=2048",
    ]))?;
    assert_ne!(code, 0, "a 1m tmpfs takes no 2 MiB");

    // The last user's stop unmounts it.
    run_ok(berthd.docker().args(["stop", "-t", "1", "one"]))?;
    assert_eq!(
        mounted_type(&data).as_deref(),
        Some("tmpfs"),
        "two still runs"
    );
    run_ok(berthd.docker().args(["stop", "-t", "1", "two"]))?;
    assert_eq!(mounted_type(&data), None, "unmounted after the last stop");
    // Started again: mounted again (a fresh tmpfs).
    run_ok(berthd.docker().args(["start", "one"]))?;
    assert_eq!(mounted_type(&data).as_deref(), Some("tmpfs"));
    run_ok(berthd.docker().args(["rm", "-f", "one", "two"]))?;
    assert_eq!(mounted_type(&data), None);
    run_ok(berthd.docker().args(["volume", "rm", "tv"]))?;
    assert!(!data.exists());

    // --mount makes its volume with the local driver's options and labels.
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "--mount",
        "type=volume,source=mt,target=/m,volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=2m,volume-label=team=x",
        "busybox",
        "grep",
        " /m ",
        "/proc/mounts",
    ]))?;
    assert!(out.contains("tmpfs") && out.contains("size=2048k"), "{out}");
    let inspect = run_ok(berthd.docker().args([
        "volume",
        "inspect",
        "-f",
        "{{.Labels.team}} {{.Options.type}} {{.Options.o}}",
        "mt",
    ]))?;
    assert_eq!(inspect.trim(), "x tmpfs size=2m");
    assert_eq!(mounted_type(&berthd.root().join("volumes/mt/_data")), None);
    run_ok(berthd.docker().args(["volume", "rm", "mt"]))?;
    Ok(())
}

#[test]
fn bind_volumes_show_the_device_and_removal_keeps_its_files() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let host = tempfile::tempdir()?;
    std::fs::write(host.path().join("kept"), "host file\n")?;
    let device = host.path().display().to_string();
    run_ok(berthd.docker().args([
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &format!("device={device}"),
        "bv",
    ]))?;
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "-v",
        "bv:/b",
        "busybox",
        "sh",
        "-c",
        "cat /b/kept; echo new > /b/new",
    ]))?;
    assert_eq!(out, "host file\n");
    assert_eq!(std::fs::read_to_string(host.path().join("new"))?, "new\n");
    let data = berthd.root().join("volumes/bv/_data");
    assert_eq!(mounted_type(&data), None, "unmounted after the container");
    // Read-only through o=bind,ro.
    run_ok(berthd.docker().args([
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind,ro",
        "-o",
        &format!("device={device}"),
        "bro",
    ]))?;
    let (code, _, _) = run(berthd
        .docker()
        .args(["run", "--rm", "-v", "bro:/b", "busybox", "touch", "/b/x"]))?;
    assert_ne!(code, 0, "a read-only bind volume is read-only");
    // A running container holds it mounted; removal of the volume is refused then,
    // and once allowed leaves the host's files alone.
    run_ok(berthd.docker().args([
        "run", "-d", "--name", "holder", "-v", "bv:/b", "busybox", "sleep", "300",
    ]))?;
    assert!(mounted_type(&data).is_some());
    let (code, _, err) = run(berthd.docker().args(["volume", "rm", "bv"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("volume is in use"), "{err}");
    run_ok(berthd.docker().args(["rm", "-f", "holder"]))?;
    run_ok(berthd.docker().args(["volume", "rm", "bv", "bro"]))?;
    assert_eq!(
        std::fs::read_to_string(host.path().join("kept"))?,
        "host file\n"
    );
    assert!(host.path().join("new").exists());
    Ok(())
}

#[test]
fn bad_local_options_are_refused() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for (opts, wanted) in [
        (
            &["type=tmpfs", "device=tmpfs", "o=size=huge"][..],
            "bad value in \"size=huge\"",
        ),
        (
            &["type=tmpfs", "device=tmpfs", "o=colour=red"],
            "\"colour\" is not a tmpfs option",
        ),
        (
            &["o=bind", "device=/tmp"],
            "missing required option: \"type\"",
        ),
        (&["type=none", "o=bind", "device=tmp"], "absolute path"),
    ] {
        let mut cmd = berthd.docker();
        cmd.args(["volume", "create"]);
        for o in opts {
            cmd.args(["-o", o]);
        }
        cmd.arg("bad");
        let (code, _, err) = run(&mut cmd)?;
        assert_ne!(code, 0, "{opts:?}");
        assert!(err.contains(wanted), "{opts:?}: {err}");
    }
    assert!(run_ok(berthd.docker().args(["volume", "ls", "-q"]))?
        .trim()
        .is_empty());
    // A device that is not there: created, refused at start, nothing mounted.
    run_ok(berthd.docker().args([
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        "device=/nonexistent/berth-e2e",
        "gone",
    ]))?;
    let (code, _, err) = run(berthd
        .docker()
        .args(["run", "--name", "cgone", "-v", "gone:/g", "busybox", "true"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("error while mounting volume"), "{err}");
    assert_eq!(
        mounted_type(&berthd.root().join("volumes/gone/_data")),
        None
    );
    run_ok(berthd.docker().args(["rm", "cgone"]))?;
    run_ok(berthd.docker().args(["volume", "rm", "gone"]))?;
    Ok(())
}

#[test]
fn a_volume_whose_user_died_while_berthd_was_down_is_unmounted_at_its_start() -> Result<()> {
    require_root();
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "rv",
    ]))?;
    for name in ["stays", "dies"] {
        run_ok(berthd.docker().args([
            "run", "-d", "--name", name, "-v", "rv:/r", "busybox", "sleep", "300",
        ]))?;
    }
    let data = berthd.root().join("volumes/rv/_data");
    let pid = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.Pid}}", "dies"]),
    )?;
    berthd.kill9()?;
    let pid: i32 = pid.trim().parse()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    berthd.restart()?;
    // The exit is learned from the shim (at once, or when its wait returns).
    assert!(
        eventually(|| exited(&berthd, "dies")),
        "dies is seen exited"
    );
    // One user still runs: mounted.
    assert_eq!(mounted_type(&data).as_deref(), Some("tmpfs"));
    // The other dies while berthd is down too: its start unmounts the volume.
    let pid = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.Pid}}", "stays"]),
    )?;
    berthd.kill9()?;
    let pid: i32 = pid.trim().parse()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    berthd.restart()?;
    assert!(
        eventually(|| exited(&berthd, "stays")),
        "stays is seen exited"
    );
    assert!(
        eventually(|| mounted_type(&data).is_none()),
        "unmounted once the last user's exit is learned"
    );
    run_ok(berthd.docker().args(["rm", "stays", "dies"]))?;
    run_ok(berthd.docker().args(["volume", "rm", "rv"]))?;
    Ok(())
}
