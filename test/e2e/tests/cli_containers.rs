//! `berth` against docker's behaviour, with Debian's docker 20.10 client on the same
//! berthd as the reference: `run`'s exit codes (125 berth or berthd failed, 126 the
//! command cannot be invoked, 127 it is not found, else the container's), and the
//! `ps`/`images`/`top` tables laid out character for character like docker's.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};
use berth_fixtures::{images, Registry};

fn exit_code(cmd: &mut Command) -> Result<(i32, String)> {
    let (code, _, err) = run(cmd)?;
    Ok((code, err))
}

#[test]
fn run_exits_with_dockers_codes() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let berth_run = |args: &[&str]| -> Result<(i32, String)> {
        exit_code(berthd.berth()?.arg("run").args(args))
    };

    // The container's own code, foreground.
    let (code, err) = berth_run(&["--rm", "busybox", "sh", "-c", "exit 7"])?;
    assert_eq!(code, 7, "{err}");
    let (code, err) = berth_run(&["--rm", "busybox", "true"])?;
    assert_eq!(code, 0, "{err}");

    // 127: the command is not found, in $PATH or at its path.
    let (code, err) = berth_run(&["--rm", "busybox", "no-such-command"])?;
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    let (code, err) = berth_run(&["--rm", "busybox", "/no/such/file"])?;
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("no such file or directory"), "{err}");
    // 126: it exists but cannot be invoked (not executable, a directory).
    let (code, err) = berth_run(&["--rm", "busybox", "/etc/passwd"])?;
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    let (code, err) = berth_run(&["--rm", "busybox", "/tmp"])?;
    assert_eq!(code, 126, "{err}");
    // --rm removed the containers that could not start.
    let left = run_ok(berthd.berth()?.args(["ps", "-aq"]))?;
    assert_eq!(left.trim(), "", "--rm left containers behind");

    // 125: berth or berthd failed.
    let (code, err) = berth_run(&["--no-such-flag", "busybox", "true"])?;
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    let (code, err) = berth_run(&["--memory", "lots", "busybox", "true"])?;
    assert_eq!(code, 125, "{err}");
    // A missing image is pulled first; a pull that fails is berth's failure.
    let (code, err) = berth_run(&["--rm", "127.0.0.1:1/no-such-image:1", "true"])?;
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("Unable to find image '127.0.0.1:1/no-such-image:1' locally"),
        "{err}"
    );
    let (code, err) = berth_run(&["--rm", "--pull", "never", "no-such-image", "true"])?;
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("No such image: no-such-image"), "{err}");
    let (code, err) = berth_run(&["--rm", "--pull", "sometimes", "busybox", "true"])?;
    assert_eq!(code, 125, "{err}");
    run_ok(
        berthd
            .berth()?
            .args(["run", "-d", "--name", "taken", "busybox", "sleep", "1000"]),
    )?;
    let (code, err) = berth_run(&["--name", "taken", "busybox", "true"])?;
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("is already in use"), "{err}");
    // Other commands take docker's codes for usage errors too.
    let (code, err) = exit_code(berthd.berth()?.args(["ps", "--no-such-flag"]))?;
    assert_eq!(code, 125, "{err}");
    let (code, err) = exit_code(berthd.berth()?.arg("run"))?;
    assert_eq!(code, 1, "a missing image argument: {err}");

    // Detached, berth and the docker CLI agree; the container keeps the code.
    for (cmd, want) in [
        ("no-such-command", 127),
        ("/no/such/file", 127),
        ("/etc/passwd", 126),
    ] {
        let name = format!("b{want}{}", cmd.len());
        let (code, err) = exit_code(
            berthd
                .berth()?
                .args(["run", "-d", "--name", &name, "busybox", cmd]),
        )?;
        assert_eq!(code, want, "berth run -d {cmd}: {err}");
        let state = run_ok(berthd.berth()?.args([
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            &name,
        ]))?;
        assert_eq!(state.trim(), format!("created {want}"), "{cmd}");
        let (code, err) = exit_code(berthd.docker().args(["run", "-d", "busybox", cmd]))?;
        assert_eq!(code, want, "docker run -d {cmd}: {err}");
    }
    let (code, err) = exit_code(
        berthd
            .docker()
            .args(["run", "-d", "--no-such-flag", "busybox"]),
    )?;
    assert_eq!(code, 125, "docker: {err}");
    let (code, err) =
        exit_code(
            berthd
                .docker()
                .args(["run", "-d", "127.0.0.1:1/no-such-image:1", "true"]),
        )?;
    assert_eq!(code, 125, "docker: {err}");
    let (code, err) = exit_code(
        berthd
            .docker()
            .args(["run", "-d", "busybox", "sh", "-c", "exit 7"]),
    )?;
    assert_eq!(code, 0, "docker: a detached run does not wait: {err}");
    let (code, err) = exit_code(
        berthd
            .berth()?
            .args(["run", "-d", "busybox", "sh", "-c", "exit 7"]),
    )?;
    assert_eq!(code, 0, "berth: a detached run does not wait: {err}");
    Ok(())
}

#[test]
fn run_pulls_a_missing_image_like_docker() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = Registry::start()?;
    let built = images::base(&tmp.path().join("base"))?;
    let for_berth = registry.push(&built, "for-berth:1")?;
    let for_docker = registry.push(&built, "for-docker:1")?;
    let berthd = Berthd::start()?;

    let (code, out, err) = run(berthd
        .berth()?
        .args(["run", "--rm", &for_berth, "echo", "hi"]))?;
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    assert!(
        err.contains(&format!("Unable to find image '{for_berth}' locally")),
        "{err}"
    );
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {for_berth}")),
        "{err}"
    );
    // Present now: no second pull.
    let (code, out, err) = run(berthd
        .berth()?
        .args(["run", "--rm", &for_berth, "echo", "again"]))?;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "again\n", ""));
    // --pull always asks the registry even so.
    let (code, _, err) = run(berthd
        .berth()?
        .args(["run", "--rm", "--pull", "always", &for_berth, "true"]))?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Image is up to date"), "{err}");

    // The docker CLI pulls through berthd the same way.
    let (code, out, err) =
        run(berthd
            .docker()
            .args(["run", "-d", "--name", "pulled", &for_docker, "echo", "hi"]))?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().len(), 64, "{out}");
    assert!(
        err.contains(&format!("Unable to find image '{for_docker}' locally")),
        "{err}"
    );
    assert_eq!(
        run_ok(berthd.docker().args(["wait", "pulled"]))?.trim(),
        "0"
    );
    assert_eq!(run_ok(berthd.berth()?.args(["logs", "pulled"]))?, "hi\n");
    Ok(())
}

/// `berth ARGS` and `docker ARGS` print the same text. Both read the same daemon, but
/// ages (`3 seconds ago`) move on between two calls: berth's output must equal the
/// docker output taken just before or just after it, in one of a few tries.
fn same_as_docker(berthd: &Berthd, args: &[&str]) -> Result<String> {
    let mut last = (String::new(), String::new());
    for _ in 0..5 {
        let before = run_ok(berthd.docker().args(args))?;
        let ours = run_ok(berthd.berth()?.args(args))?;
        let after = run_ok(berthd.docker().args(args))?;
        if ours == before || ours == after {
            return Ok(ours);
        }
        last = (ours, after);
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!(
        "`{}` differs:\nberth:\n{}\ndocker:\n{}",
        args.join(" "),
        last.0,
        last.1
    )
}

#[test]
fn ps_images_and_top_tables_match_dockers() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.berth()?.args([
        "tag",
        "busybox",
        "registry.example:5000/team/a-much-longer-repository:v1.2.3",
    ]))?;

    // Names, commands and states of different widths; quotes in a command.
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo \"quoted\"; sleep 1000",
    ]))?;
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "a-container-with-a-long-name",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    let done = run_ok(berthd.berth()?.args(["run", "-d", "busybox", "true"]))?;
    run_ok(berthd.berth()?.args(["wait", done.trim()]))?;
    run_ok(
        berthd
            .berth()?
            .args(["create", "--name", "spaced", "busybox", "echo", "a b"]),
    )?;

    let ps = same_as_docker(&berthd, &["ps", "-a"])?;
    let header = ps.lines().next().unwrap_or("");
    assert!(
        header.starts_with("CONTAINER ID   IMAGE     COMMAND   "),
        "{ps}"
    );
    // The widest COMMAND cell is 23 characters: its column is 26 wide.
    assert_eq!(header.find("CREATED"), Some(15 + 10 + 26), "{ps}");
    // docker quotes the command (escaping the quotes in it) and cuts it at 20
    // characters; an argument with a space is shown in single quotes.
    assert!(ps.contains(r#""sh -c 'echo \"quoted…""#), "{ps}");
    assert!(ps.contains(r#""echo 'a b'""#), "{ps}");
    same_as_docker(&berthd, &["ps"])?;
    let full = same_as_docker(&berthd, &["ps", "-a", "--no-trunc"])?;
    assert!(
        full.contains(r#""sh -c 'echo \"quoted\"; sleep 1000'""#),
        "{full}"
    );
    same_as_docker(
        &berthd,
        &[
            "ps",
            "-a",
            "--format",
            "table {{.Names}}\t{{.Status}}\t{{.Labels}}",
        ],
    )?;
    same_as_docker(&berthd, &["ps", "-a", "--format", "{{.ID}} {{.Command}}"])?;

    let images = same_as_docker(&berthd, &["images"])?;
    // The 51-character repository makes the first column 54 wide.
    let header = images.lines().next().unwrap_or("");
    assert_eq!(header.find("TAG"), Some(54), "{images}");
    same_as_docker(&berthd, &["images", "--digests"])?;
    same_as_docker(&berthd, &["images", "--no-trunc"])?;
    same_as_docker(&berthd, &["history", "busybox"])?;

    // top writes with a minimum column width of 20.
    let top = same_as_docker(&berthd, &["top", "web"])?;
    assert!(top.starts_with("UID                 PID "), "{top}");
    Ok(())
}
