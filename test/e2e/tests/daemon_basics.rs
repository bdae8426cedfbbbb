//! berthd as a user meets it first: many `berth run`s at once without names, and the log
//! it writes when its stderr is a file.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use berth_e2e::{require_root, run_ok, Berthd};

/// 40 concurrent `berth run --rm` without `--name`: each gets a generated name, and none
/// fails because another create picked the same one (576 base names, so some of the 40
/// draws collide; the names must still come out distinct).
#[test]
fn concurrent_unnamed_runs_never_fail_on_a_name() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let runs: Vec<_> = (0..40)
        .map(|n| {
            let mut cmd = berthd.berth()?;
            cmd.args(["run", "--rm", "busybox", "sh", "-c", &format!("echo r{n}")]);
            Ok(std::thread::spawn(move || cmd.output()))
        })
        .collect::<Result<_>>()?;
    let mut failures = Vec::new();
    for (n, run) in runs.into_iter().enumerate() {
        let out = match run.join() {
            Ok(out) => out?,
            Err(_) => bail!("the thread running berth run {n} panicked"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || stdout.trim() != format!("r{n}") {
            failures.push(format!(
                "run {n}: {} stdout {stdout:?} stderr {:?}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", berthd.log());
    let left = run_ok(berthd.berth()?.args(["ps", "-aq"]))?;
    assert_eq!(left.trim(), "", "--rm left containers behind");

    // The same through create, keeping the containers to compare their names.
    let creates: Vec<_> = (0..40)
        .map(|_| {
            let mut cmd = berthd.berth()?;
            cmd.args(["create", "busybox", "true"]);
            Ok(std::thread::spawn(move || cmd.output()))
        })
        .collect::<Result<_>>()?;
    for create in creates {
        let out = match create.join() {
            Ok(out) => out?,
            Err(_) => bail!("a thread running berth create panicked"),
        };
        assert!(
            out.status.success(),
            "berth create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let names = run_ok(berthd.berth()?.args(["ps", "-a", "--format", "{{.Names}}"]))?;
    let names: Vec<&str> = names.lines().collect();
    let distinct: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), 40, "{names:?}");
    assert_eq!(distinct.len(), 40, "generated names repeat: {names:?}");
    Ok(())
}

/// berthd's stderr goes to a file here (the e2e harness writes berthd.log): the log is
/// plain text, without the terminal's colour escape codes.
#[test]
fn the_log_of_berthd_is_plain_text_and_names_each_requests_container() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let id = run_ok(
        berthd
            .berth()?
            .args(["create", "--name", "quiet", "busybox", "true"]),
    )?;
    let id = id.trim();
    run_ok(berthd.berth()?.args(["start", "quiet"]))?;
    run_ok(berthd.berth()?.args(["run", "--rm", "busybox", "true"]))?;
    let log = berthd.log();
    // Each request's lines carry the container it is about: the id a create made, the
    // name a start was given.
    let answered = |path: &str, container: &str| {
        log.lines().any(|l| {
            l.contains(path)
                && l.contains(&format!("container={container:?}"))
                && l.contains("answered")
        })
    };
    assert!(answered("/containers/create", id), "{log}");
    assert!(answered("/containers/quiet/start", "quiet"), "{log}");
    assert!(
        log.contains("container created"),
        "berthd logged its work: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in berthd.log: {:?}",
        log.lines().find(|l| l.contains('\u{1b}'))
    );
    Ok(())
}
