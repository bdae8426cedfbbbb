//! `berth version` and `berth info` against a real berthd, checked against what the
//! docker CLI reports for the same daemon.

use std::process::Command;

use anyhow::Result;
use berth_e2e::{binary, require_root, run_ok, Berthd};

fn berth(berthd: &Berthd) -> Result<Command> {
    let mut cmd = Command::new(binary("berth")?);
    cmd.env("DOCKER_HOST", berthd.docker_host());
    Ok(cmd)
}

#[test]
fn version_and_info_agree_with_the_docker_cli() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let text = run_ok(berth(&berthd)?.arg("version"))?;
    assert!(text.contains("Server: berth"), "{text}");
    assert!(
        text.contains("API version:      1.41 (minimum version 1.24)"),
        "{text}"
    );
    for (field, docker_field) in [
        ("{{.Server.APIVersion}}", "{{.Server.APIVersion}}"),
        ("{{.Server.KernelVersion}}", "{{.Server.KernelVersion}}"),
    ] {
        let ours = run_ok(berth(&berthd)?.args(["version", "--format", field]))?;
        let theirs = run_ok(
            Command::new("/usr/bin/docker")
                .env("DOCKER_HOST", berthd.docker_host())
                .args(["version", "--format", docker_field]),
        )?;
        assert_eq!(ours.trim(), theirs.trim(), "{field}");
    }
    let info = run_ok(berth(&berthd)?.arg("info"))?;
    assert!(
        info.contains(&format!(" Docker Root Dir: {}\n", berthd.root().display())),
        "{info}"
    );
    assert!(info.contains(" Containers: 0\n"), "{info}");
    let name = run_ok(berth(&berthd)?.args([
        "-H",
        &berthd.docker_host(),
        "info",
        "-f",
        "{{.Name}} {{.OSType}}",
    ]))?;
    let hostname = nix::unistd::gethostname()?.to_string_lossy().into_owned();
    assert_eq!(name.trim(), format!("{hostname} linux"));
    Ok(())
}

#[test]
fn clear_errors_when_the_daemon_is_down_or_the_template_is_bad() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let bad = berth(&berthd)?
        .args(["info", "--format", "{{.NoSuchField}}"])
        .output()?;
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("can't evaluate field NoSuchField"),
        "{stderr}"
    );

    let down = Command::new(binary("berth")?)
        .args(["-H", "unix:///nonexistent/berth.sock", "version"])
        .output()?;
    assert!(!down.status.success());
    let stdout = String::from_utf8_lossy(&down.stdout);
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stdout.contains("Client:"),
        "the client section prints anyway: {stdout}"
    );
    assert!(
        stderr.contains("Cannot connect to the berth daemon at unix:///nonexistent/berth.sock"),
        "{stderr}"
    );
    Ok(())
}
