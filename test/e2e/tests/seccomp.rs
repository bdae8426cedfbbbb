//! berth's default seccomp profile seen from inside containers: a filter is loaded,
//! an unprivileged user namespace (which no capability guards) is refused, and
//! `--security-opt seccomp=unconfined` or `--privileged` lift it, as with docker.

use std::process::Command;

use anyhow::Result;
use berth_e2e::{require_root, run_ok, Berthd};

fn run(cmd: &mut Command) -> Result<(i32, String)> {
    let out = cmd.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn default_profile_refuses_namespaces_and_can_be_lifted() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;

    let status = run_ok(berthd.berth()?.args([
        "run",
        "--rm",
        "busybox",
        "grep",
        "^Seccomp:",
        "/proc/self/status",
    ]))?;
    assert_eq!(status.split_whitespace().nth(1), Some("2"), "{status}");

    let (code, out) = run(berthd
        .berth()?
        .args(["run", "--rm", "busybox", "unshare", "-U", "true"]))?;
    assert_ne!(
        code, 0,
        "unshare -U succeeded under the default profile: {out}"
    );
    assert!(out.contains("Operation not permitted"), "{out}");

    let lifts: [&[&str]; 2] = [&["--security-opt", "seccomp=unconfined"], &["--privileged"]];
    for lift in lifts {
        let (code, out) = run(berthd
            .berth()?
            .args(["run", "--rm"])
            .args(lift)
            .args(["busybox", "unshare", "-U", "true"]))?;
        assert_eq!(code, 0, "{lift:?}: {out}\n{}", berthd.log());
    }

    let (code, out) = run(berthd.berth()?.args([
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/nonexistent.json",
        "busybox",
        "true",
    ]))?;
    // The CLI reads the profile, as docker's does: a missing file fails there.
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("/nonexistent.json"), "{out}");
    Ok(())
}
