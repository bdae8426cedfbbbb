//! `--blkio-weight` through berthd's Docker API, from the docker 20.10 CLI and from
//! `berth`, as Docker handles it: applied where the host's blkio cgroups have a weight
//! file (BFQ), discarded with Docker's warning where they have none (most servers),
//! refused outside 10..1000 with Docker's error.
//!
//! The host is checked first; the kind of host this machine is not is covered by the
//! daemon's unit tests (`docker_api::containers::create::blkio`, a host without
//! support stood in for) and by `cli_create_body` (both CLIs print a create warning the same way).

use std::process::Command;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

const DISCARDED: &str = "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";

#[test]
fn blkio_weight_is_applied_or_discarded_as_docker_does() -> Result<()> {
    require_root();
    let weight_file = berth_fixtures::cgroups::blkio_weight_file();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let script = format!(
        "cat /sys/fs/cgroup/blkio/{} 2>&1",
        weight_file.as_deref().unwrap_or("blkio.bfq.weight")
    );
    let clients: [(&str, Command); 2] = [("docker", berthd.docker()), ("berth", berthd.berth()?)];
    for (name, mut cli) in clients {
        let container = format!("blkio-{name}");
        let (code, out, err) = run(cli.args([
            "run",
            "-d",
            "--name",
            &container,
            "--blkio-weight",
            "300",
            "busybox",
            "sh",
            "-c",
            &script,
        ]))?;
        assert_eq!(code, 0, "{name}: {out}{err}");
        let waited = run_ok(berthd.docker().args(["wait", &container]))?;
        let logs = run_ok(berthd.docker().args(["logs", &container]))?;
        let kept = run_ok(berthd.docker().args([
            "inspect",
            "-f",
            "{{.HostConfig.BlkioWeight}}",
            &container,
        ]))?;
        match &weight_file {
            Ok(file) => {
                assert!(!err.contains("WARNING"), "{name}: {err}");
                assert_eq!(waited.trim(), "0", "{name}: {logs}");
                assert_eq!(logs.trim(), "300", "{name}: {file}");
                assert_eq!(kept.trim(), "300", "{name}");
            }
            Err(_) => {
                assert!(
                    err.lines().any(|l| l == DISCARDED),
                    "{name} prints the create answer's warning: {err}"
                );
                // The container runs, without a weight.
                assert_eq!(kept.trim(), "0", "{name}");
                assert!(!logs.contains("300"), "{name}: {logs}");
            }
        }
        run_ok(berthd.docker().args(["rm", &container]))?;
    }
    match &weight_file {
        Ok(file) => {
            eprintln!(
                "skipped: the discard on a host without a weight file (this host has {file}; \
                 the daemon's create::blkio unit tests stand in for such a host)"
            );
            // Docker's range, Docker's error, nothing left behind.
            for mut cli in [berthd.docker(), berthd.berth()?] {
                let (code, _, err) =
                    run(cli.args(["create", "--blkio-weight", "5", "busybox", "true"]))?;
                assert_ne!(code, 0, "{err}");
                assert!(
                    err.contains("Range of blkio weight is from 10 to 1000"),
                    "{err}"
                );
            }
            let left = run_ok(berthd.docker().args(["ps", "-aq"]))?;
            assert!(left.trim().is_empty(), "{left}");
        }
        Err(why) => eprintln!("skipped: applying a block I/O weight ({why})"),
    }
    Ok(())
}
