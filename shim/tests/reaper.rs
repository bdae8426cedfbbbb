//! The reaper in its own process (it reaps every child of the process, so it must not
//! share a test binary with tests that wait for their own children).

use std::process::Command;
use std::sync::mpsc::channel;
use std::time::Duration;

use berth_shim::reaper::Reaper;

#[test]
fn reaper_reports_every_exit() {
    let (tx, rx) = channel();
    let reaper = Reaper::start(Box::new(move |pid, code, _| {
        let _ = tx.send((pid, code));
    }))
    .expect("starting the reaper");

    // A second reaper in the same process would race the first for every child.
    assert!(Reaper::start(Box::new(|_, _, _| {})).is_err());

    // Commands run through the reaper get their own status.
    assert_eq!(reaper.status(Command::new("true").arg("x")).unwrap(), 0);
    assert_eq!(
        reaper
            .status(Command::new("sh").args(["-c", "exit 7"]))
            .unwrap(),
        7
    );
    let (code, out, _) = reaper
        .output(Command::new("sh").args(["-c", "echo hi"]))
        .unwrap();
    assert_eq!((code, out.as_slice()), (0, &b"hi\n"[..]));

    // Children started behind the reaper's back (as the in-process runtime forks a
    // container init), first while the reaper has no child at all: each exit reaches
    // the handler, signals as 128 + the signal number.
    for (script, want) in [
        ("exit 3", 3),
        ("kill -TERM $$", 128 + 15),
        ("sleep 0.2; exit 0", 0),
    ] {
        // Never waited for here: reaping it is the reaper's job.
        let spawned = Command::new("sh")
            .args(["-c", script])
            .spawn()
            .unwrap()
            .id();
        let (pid, code) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the exit reached the handler");
        assert_eq!((pid, code), (pid_i32(spawned), want), "{script}");
    }
    assert!(rx.try_recv().is_err(), "no exit reported twice");
}

fn pid_i32(pid: u32) -> i32 {
    i32::try_from(pid).expect("pids fit in i32")
}
