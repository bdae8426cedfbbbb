//! Issue 5's promise: containers outlive berthd. Five containers run, berthd is
//! killed with SIGKILL, one container exits while it is down; the restarted berthd
//! finds four running (and stops them) and the fifth's real exit code, with every
//! log intact.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_e2e::{require_root, run_ok, Berthd};

#[test]
fn containers_survive_a_daemon_kill9_and_exits_are_learned() -> Result<()> {
    require_root();
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for i in 1..=4 {
        run_ok(berthd.berth()?.args([
            "run",
            "-d",
            "--name",
            &format!("c{i}"),
            "busybox",
            "sh",
            "-c",
            &format!(
                "echo start-{i}; trap 'echo term-{i}; exit 0' TERM; while true; do sleep 0.1; done"
            ),
        ]))?;
    }
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "c5",
        "busybox",
        "sh",
        "-c",
        "echo start-5; sleep 2; echo end-5; exit 42",
    ]))?;
    // Every container has written its first line before the crash.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 1..=5 {
        loop {
            let logs = run_ok(berthd.berth()?.args(["logs", &format!("c{i}")]))?;
            if logs.starts_with(&format!("start-{i}\n")) {
                break;
            }
            if Instant::now() > deadline {
                bail!("c{i} wrote no output: {logs:?}\n{}", berthd.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    berthd.kill9()?;
    // c5 exits while no daemon watches it.
    std::thread::sleep(Duration::from_secs(4));
    berthd.restart()?;

    let ps = run_ok(
        berthd
            .berth()?
            .args(["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
    )?;
    let mut states: Vec<&str> = ps.lines().collect();
    states.sort();
    assert_eq!(
        states,
        [
            "c1 running",
            "c2 running",
            "c3 running",
            "c4 running",
            "c5 exited"
        ],
        "{}",
        berthd.log()
    );
    let c5 = run_ok(
        berthd
            .berth()?
            .args(["inspect", "-f", "{{.State.ExitCode}}", "c5"]),
    )?;
    assert_eq!(c5.trim(), "42");
    assert_eq!(
        run_ok(berthd.berth()?.args(["logs", "c5"]))?,
        "start-5\nend-5\n"
    );

    // The four are still under control: stop delivers SIGTERM to their traps.
    for i in 1..=4 {
        let name = format!("c{i}");
        run_ok(berthd.berth()?.args(["stop", "-t", "5", &name]))?;
        let st = run_ok(berthd.berth()?.args([
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            &name,
        ]))?;
        assert_eq!(st.trim(), "exited 0", "{name}");
        let logs = run_ok(berthd.berth()?.args(["logs", &name]))?;
        assert_eq!(logs, format!("start-{i}\nterm-{i}\n"), "{name}");
    }
    Ok(())
}

/// SIGTERM stops berthd promptly even while containers run (their shims' waits must
/// not hold it), and leaves the containers running for the next berthd.
#[test]
fn sigterm_stops_berthd_and_leaves_containers_running() -> Result<()> {
    require_root();
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "stays",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]))?;
    let started = Instant::now();
    // `stop` fails the test if berthd ignores SIGTERM for 10 s.
    berthd.stop()?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "berthd took {:?} to exit on SIGTERM",
        started.elapsed()
    );
    berthd.restart()?;
    let state = run_ok(
        berthd
            .berth()?
            .args(["inspect", "-f", "{{.State.Status}}", "stays"]),
    )?;
    assert_eq!(state.trim(), "running", "{}", berthd.log());
    run_ok(berthd.berth()?.args(["stop", "-t", "5", "stays"]))?;
    Ok(())
}

/// A stop cut short by a crash after the shim deleted the task and before berthd let
/// the shim go and recorded the exit: the restarted berthd finds a live shim without
/// the task. It records the exit, and the idle shim goes (it would be left forever).
#[test]
fn an_idle_shim_left_by_a_crash_mid_stop_goes_at_restart() -> Result<()> {
    require_root();
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let id = run_ok(
        berthd
            .berth()?
            .args(["run", "-d", "--name", "cut", "busybox", "sleep", "600"]),
    )?
    .trim()
    .to_string();
    let address =
        std::fs::read_to_string(berthd.root().join("containers").join(&id).join("address"))?;
    berthd.kill9()?;
    // What the stop had done when berthd died: the task killed and deleted.
    let shim = berth_engine::shim::Shim::connect(address.trim())?;
    shim.kill(&id, nix::sys::signal::Signal::SIGKILL as u32, true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while shim.state(&id).is_ok_and(|(s, _)| s != "stopped") {
        if Instant::now() > deadline {
            bail!("the task did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    shim.delete(&id)?;
    drop(shim);
    let shims = || berth_e2e::processes_with(&format!("-id {id}"));
    assert_eq!(shims().len(), 1, "the shim lives on without its task");

    berthd.restart()?;
    let state = run_ok(berthd.berth()?.args([
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "cut",
    ]))?;
    assert_eq!(state.trim(), "exited 137", "{}", berthd.log());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shims().is_empty() {
        if Instant::now() > deadline {
            bail!("shim left: {:?}\n{}", shims(), berthd.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    run_ok(berthd.berth()?.args(["rm", "cut"]))?;
    Ok(())
}
