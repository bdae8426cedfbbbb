//! `--log-driver`/`--log-opt` through Debian's docker 20.10 client: `none` keeps no
//! log and `logs` answers as Docker does; unknown drivers and options are refused
//! and nothing is created.

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

#[test]
fn log_drivers_are_checked_and_none_keeps_nothing() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo never-kept; sleep 100",
    ]))?;
    let (code, out, err) = run(berthd.docker().args(["logs", "quiet"]))?;
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    let driver =
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "quiet"]),
        )?;
    assert_eq!(driver.trim(), "none");

    // json-file is accepted, and its logs read.
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "kept",
        "--log-driver",
        "json-file",
        "busybox",
        "echo",
        "kept",
    ]))?;
    run_ok(berthd.docker().args(["wait", "kept"]))?;
    assert_eq!(run_ok(berthd.docker().args(["logs", "kept"]))?, "kept\n");

    // Refused by name, nothing created.
    for (args, want) in [
        (
            vec!["--log-driver", "syslog"],
            "no log driver named 'syslog'",
        ),
        (
            vec!["--log-opt", "max-bytes=1"],
            "unknown log opt 'max-bytes' for json-file log driver",
        ),
        (
            vec!["--log-opt", "max-file=3"],
            "max-file cannot be set when max-size is not set",
        ),
        (
            vec!["--log-opt", "max-size=1m", "--log-opt", "compress=true"],
            "compress cannot be true when max-file is less than 2",
        ),
        (
            vec!["--log-opt", "tag={{.Name}}"],
            "log opt 'tag' of the json-file log driver is not applied by berth",
        ),
    ] {
        let (code, _, err) = run(berthd
            .docker()
            .args(["create", "--name", "refused"])
            .args(&args)
            .args(["busybox", "true"]))?;
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let all = run_ok(berthd.docker().args(["ps", "-a", "--format", "{{.Names}}"]))?;
    assert!(!all.contains("refused"), "{all}");
    Ok(())
}
