//! json-file logs through Debian's docker 20.10 client: Docker's on-disk format,
//! rotation by `max-size` keeping `max-file` files, gzipped rotated files with
//! `compress`, `logs` (with `--tail`, `-t`, `-f`) reading across them, and the
//! daemon's default driver and options from config.toml.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::{binary, require_root, run, run_ok, Berthd};

/// A shell loop printing `line 0` … `line N-1`.
fn lines_script(n: usize, pause: &str) -> String {
    format!("i=0; while [ $i -lt {n} ]; do echo \"line $i\"; {pause} i=$((i+1)); done")
}

/// The container's log file and its rotated files, by name.
fn log_files(berthd: &Berthd, name: &str) -> Result<(PathBuf, Vec<String>)> {
    let path = PathBuf::from(
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{.LogPath}}", name]),
        )?
        .trim()
        .to_string(),
    );
    let file = path
        .file_name()
        .context("LogPath has no file name")?
        .to_string_lossy()
        .into_owned();
    let dir = path.parent().context("LogPath has no directory")?;
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&file))
        .collect();
    names.sort();
    Ok((path, names))
}

/// Parses a json-file log as Docker writes it: one object per line, keys `log`,
/// `stream`, `time` in that order; returns the `log` texts.
fn parse_json_file(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        let keys: Vec<&String> = v.as_object().context("not an object")?.keys().collect();
        if keys != ["log", "stream", "time"] {
            bail!("keys {keys:?} in {line}");
        }
        let time = v["time"].as_str().context("time")?;
        if !(time.ends_with('Z') && time.len() >= 20 && &time[10..11] == "T") {
            bail!("time {time:?} is not RFC 3339 UTC");
        }
        if v["stream"] != "stdout" && v["stream"] != "stderr" {
            bail!("stream in {line}");
        }
        out.push(v["log"].as_str().context("log")?.to_string());
    }
    Ok(out)
}

fn gunzip(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        bail!("{} is not gzip", path.display());
    }
    run_ok(Command::new("gzip").arg("-dc").arg(path))
}

/// The `log` texts of every file, oldest first.
fn read_all_files(path: &Path, names: &[String]) -> Result<Vec<String>> {
    let dir = path.parent().context("no dir")?;
    let mut rotated: Vec<(u32, &String)> = names
        .iter()
        .filter_map(|n| {
            let rest = n
                .strip_prefix(path.file_name()?.to_str()?)?
                .strip_prefix('.')?;
            Some((rest.trim_end_matches(".gz").parse().ok()?, n))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out = Vec::new();
    for (_, name) in rotated {
        let p = dir.join(name);
        let text = if name.ends_with(".gz") {
            gunzip(&p)?
        } else {
            std::fs::read_to_string(&p)?
        };
        out.extend(parse_json_file(&text)?);
    }
    out.extend(parse_json_file(&std::fs::read_to_string(path)?)?);
    Ok(out)
}

fn numbers(lines: &[&str]) -> Vec<usize> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("line ")?.parse().ok())
        .collect()
}

#[test]
fn json_file_rotates_to_max_file_files_and_logs_reads_them_in_order() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        &lines_script(3000, ""),
    ]))?;
    run_ok(berthd.docker().args(["wait", "chatty"]))?;
    let id = run_ok(berthd.docker().args(["inspect", "-f", "{{.Id}}", "chatty"]))?;
    let (path, names) = log_files(&berthd, "chatty")?;
    // Where dockerd keeps it: <id>-json.log in the container's directory.
    assert_eq!(
        path.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(format!("{}-json.log", id.trim()))
    );
    let file = format!("{}-json.log", id.trim());
    assert_eq!(
        names,
        [file.clone(), format!("{file}.1"), format!("{file}.2")],
        "max-file=3 leaves three files"
    );
    for n in &names {
        let len = std::fs::metadata(path.with_file_name(n))?.len();
        // Each rotated at 10 KiB, passing it by at most one record.
        assert!(len <= 10 * 1024 + 100, "{n}: {len} bytes");
    }
    let kept = read_all_files(&path, &names)?;
    let kept_numbers = numbers(&kept.iter().map(String::as_str).collect::<Vec<_>>());
    let first = *kept_numbers.first().context("no lines kept")?;
    assert!(first > 0, "the oldest lines are gone");
    assert_eq!(kept_numbers, (first..3000).collect::<Vec<_>>());

    // logs reads the three files in order: exactly what they hold.
    let out = run_ok(berthd.docker().args(["logs", "chatty"]))?;
    let shown: Vec<&str> = out.lines().collect();
    assert_eq!(numbers(&shown), (first..3000).collect::<Vec<_>>(), "logs");
    let tail = run_ok(berthd.docker().args(["logs", "--tail", "3", "chatty"]))?;
    assert_eq!(tail, "line 2997\nline 2998\nline 2999\n");
    let stamped = run_ok(
        berthd
            .docker()
            .args(["logs", "-t", "--tail", "1", "chatty"]),
    )?;
    let (ts, text) = stamped.trim_end().split_once(' ').context("-t")?;
    assert_eq!(text, "line 2999");
    assert!(ts.ends_with('Z') && ts.len() == 30, "{ts}");
    // --until before the container started shows nothing; --since far back all.
    let until =
        run_ok(
            berthd
                .docker()
                .args(["logs", "--until", "2000-01-01T00:00:00Z", "chatty"]),
        )?;
    assert_eq!(until, "");
    let since =
        run_ok(
            berthd
                .docker()
                .args(["logs", "--since", "2000-01-01T00:00:00Z", "chatty"]),
        )?;
    assert_eq!(since, out);
    Ok(())
}

#[test]
fn compressed_rotated_files_are_gzip_and_still_read() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "packed",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        &lines_script(3000, ""),
    ]))?;
    run_ok(berthd.docker().args(["wait", "packed"]))?;
    // The last rotated file is compressed by a thread of the shim: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (path, names) = loop {
        let (path, names) = log_files(&berthd, "packed")?;
        if names.iter().filter(|n| n.ends_with(".gz")).count() == 2 || Instant::now() > deadline {
            break (path, names);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let file = path
        .file_name()
        .context("name")?
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        names,
        [file.clone(), format!("{file}.1.gz"), format!("{file}.2.gz")],
        "every rotated file gzipped, as Docker's"
    );
    let kept = read_all_files(&path, &names)?;
    let kept_numbers = numbers(&kept.iter().map(String::as_str).collect::<Vec<_>>());
    let first = *kept_numbers.first().context("no lines")?;
    assert!(first > 0);
    assert_eq!(kept_numbers, (first..3000).collect::<Vec<_>>());
    let out = run_ok(berthd.docker().args(["logs", "packed"]))?;
    assert_eq!(
        numbers(&out.lines().collect::<Vec<_>>()),
        (first..3000).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn logs_follow_goes_on_across_rotations() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "slow",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        &format!("sleep 1; {}", lines_script(400, "sleep 0.005;")),
    ]))?;
    // Started before the first line: -f sees every line though only two small files
    // are ever kept.
    let out = run_ok(berthd.docker().args(["logs", "-f", "slow"]))?;
    assert_eq!(
        numbers(&out.lines().collect::<Vec<_>>()),
        (0..400).collect::<Vec<_>>()
    );
    let (_, names) = log_files(&berthd, "slow")?;
    assert_eq!(names.len(), 2, "{names:?}");
    Ok(())
}

#[test]
fn the_daemon_default_log_driver_and_options_apply() -> Result<()> {
    require_root();
    let berthd = Berthd::start_with_config(
        "log_driver = \"json-file\"\n[log_opts]\nmax-size = \"4k\"\nmax-file = \"2\"\n",
    )?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "dflt",
        "busybox",
        "sh",
        "-c",
        &lines_script(500, ""),
    ]))?;
    run_ok(berthd.docker().args(["wait", "dflt"]))?;
    let config = run_ok(berthd.docker().args([
        "inspect",
        "-f",
        "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}}",
        "dflt",
    ]))?;
    assert_eq!(config.trim(), "json-file 4k 2");
    let (_, names) = log_files(&berthd, "dflt")?;
    assert_eq!(names.len(), 2, "{names:?}");
    let out = run_ok(berthd.docker().args(["logs", "--tail", "1", "dflt"]))?;
    assert_eq!(out, "line 499\n");
    // A container's own options win over the default ones.
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "own",
        "--log-opt",
        "max-size=1m",
        "busybox",
        "sh",
        "-c",
        &lines_script(500, ""),
    ]))?;
    run_ok(berthd.docker().args(["wait", "own"]))?;
    let (_, names) = log_files(&berthd, "own")?;
    assert_eq!(names.len(), 1, "{names:?}");
    drop(berthd);

    let quiet = Berthd::start_with_config("log_driver = \"none\"\n")?;
    quiet.import_busybox("busybox")?;
    run_ok(
        quiet
            .docker()
            .args(["run", "-d", "--name", "qq", "busybox", "echo", "gone"]),
    )?;
    run_ok(quiet.docker().args(["wait", "qq"]))?;
    let (code, _, err) = run(quiet.docker().args(["logs", "qq"]))?;
    assert_ne!(code, 0);
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_daemon_log_settings_stop_berthd_naming_the_key() -> Result<()> {
    require_root();
    for (config, want) in [
        ("log_driver = \"syslog\"\n", "log_driver \"syslog\""),
        ("[log_opts]\nmax-size = \"lots\"\n", "log_opts.max-size"),
        ("[log_opts]\nmax-file = \"3\"\n", "log_opts.max-file"),
    ] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config)?;
        let (code, _, err) = run(Command::new(binary("berthd")?)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(&path))?;
        assert_ne!(code, 0, "{config}");
        assert!(err.contains(want), "{config}: {err}");
        assert!(!dir.path().join("state").join("docker.sock").exists());
    }
    Ok(())
}

#[test]
fn local_rotates_too_and_logs_reads_it() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=4k",
        "busybox",
        "sh",
        "-c",
        &lines_script(1000, ""),
    ]))?;
    run_ok(berthd.docker().args(["wait", "loc"]))?;
    // local's defaults: 5 files, the rotated ones compressed (in berth's CRI format).
    let deadline = Instant::now() + Duration::from_secs(10);
    let names = loop {
        let (_, names) = log_files(&berthd, "loc")?;
        if names.iter().filter(|n| n.ends_with(".gz")).count() == 4 || Instant::now() > deadline {
            break names;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(names.len(), 5, "{names:?}");
    let out = run_ok(berthd.docker().args(["logs", "loc"]))?;
    let shown = numbers(&out.lines().collect::<Vec<_>>());
    let first = *shown.first().context("no lines")?;
    assert!(first > 0, "the oldest lines are gone");
    assert_eq!(shown, (first..1000).collect::<Vec<_>>());
    Ok(())
}
