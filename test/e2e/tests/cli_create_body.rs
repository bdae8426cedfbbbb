//! Differential test: for the same `create`/`run` flags, berth builds the same Docker
//! API create request as the real docker CLI sends. The docker CLI talks to a
//! capturing server on a unix socket that records the body and answers like a daemon.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use berth_cli::run_args::CreateFlags;
use clap::Parser;
use serde_json::Value;

#[derive(Parser)]
struct CreateCommand {
    #[command(flatten)]
    flags: CreateFlags,
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    /// IMAGE [COMMAND] [ARG...]: flags end at the image, as docker parses them.
    #[arg(required = true, trailing_var_arg = true)]
    args: Vec<String>,
}

/// The warning dockerd answers a create with when it discards a block I/O weight.
const DISCARDED: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";

/// Serves `/_ping` and `containers/create` on a socket, sending each create body back.
/// A create with a `BlkioWeight` is answered as dockerd answers it on a host without
/// block I/O weight support: with a warning.
fn capture_server(socket: PathBuf) -> Result<mpsc::Receiver<Value>> {
    let listener = UnixListener::bind(&socket)?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            let mut length = 0usize;
            let mut line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let (status, reply) = if request_line.contains("/containers/create") {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let warnings: Vec<&str> = if body["HostConfig"]["BlkioWeight"]
                    .as_u64()
                    .is_some_and(|w| w > 0)
                {
                    vec![DISCARDED]
                } else {
                    Vec::new()
                };
                let _ = tx.send(body);
                (
                    "201 Created",
                    serde_json::json!({"Id": "0123456789ab", "Warnings": warnings}).to_string(),
                )
            } else if request_line.contains("/_ping") {
                ("200 OK", "OK".to_string())
            } else {
                ("404 Not Found", r#"{"message":"not captured"}"#.to_string())
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nOstype: linux\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    Ok(rx)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_empty),
        Value::Object(o) => o.values().all(is_empty),
    }
}

/// Every field berth sends equals docker's; every field berth leaves out is empty in docker's.
fn compare(path: &str, ours: &Value, docker: &Value) -> Result<()> {
    let (Value::Object(ours), Value::Object(docker)) = (ours, docker) else {
        bail!("{path}: expected objects, got {ours} and {docker}");
    };
    for (key, value) in ours {
        let theirs = docker
            .get(key)
            .with_context(|| format!("{path}.{key}: docker does not send it"))?;
        if key == "HostConfig" {
            compare(&format!("{path}.{key}"), value, theirs)?;
        } else if key == "Binds" || key == "Env" || key == "Ulimits" {
            // docker 20.10 passes binds, env and ulimits through Go maps: their order is
            // random.
            let sorted = |v: &Value| {
                let mut items: Vec<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(Value::to_string)
                    .collect();
                items.sort();
                items
            };
            if sorted(value) != sorted(theirs) {
                bail!("{path}.{key}: berth sends {value}, docker sends {theirs}");
            }
        } else if value != theirs {
            bail!("{path}.{key}: berth sends {value}, docker sends {theirs}");
        }
    }
    for (key, theirs) in docker {
        if !ours.contains_key(key) && !is_empty(theirs) {
            bail!("{path}.{key}: docker sends {theirs}, berth sends nothing");
        }
    }
    Ok(())
}

#[test]
fn berth_builds_the_create_request_docker_sends() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("capture.sock");
    let bodies = capture_server(socket.clone())?;
    let env_file = dir.path().join("env");
    std::fs::write(
        &env_file,
        "# comment\nFROM_FILE=1\nFROM_SHELL\n\nB=two words\n",
    )?;
    let env_file = env_file.to_string_lossy().into_owned();
    // Keys out of alphabetical order and whitespace: both CLIs send the file's JSON
    // compacted, keys in the file's order.
    let seccomp_file = dir.path().join("seccomp.json");
    std::fs::write(
        &seccomp_file,
        "{\n  \"syscalls\": [ {\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\"} ],\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n",
    )?;
    let seccomp_opt = format!("seccomp={}", seccomp_file.display());
    let cases: Vec<Vec<&str>> = vec![
        vec!["create", "busybox"],
        vec![
            "create",
            "--name",
            "web",
            "-e",
            "A=1",
            "-e",
            "FROM_SHELL",
            "-e",
            "UNSET_VAR",
            "busybox",
            "echo",
            "hi",
        ],
        vec![
            "create",
            "--env-file",
            &env_file,
            "-w",
            "/tmp",
            "-u",
            "33:100",
            "-l",
            "k=v",
            "-l",
            "flag",
            "busybox",
        ],
        vec![
            "create",
            "-v",
            "/h:/c:ro",
            "-v",
            "named:/data",
            "-v",
            "/anon",
            "--tmpfs",
            "/run:size=1m",
            "busybox",
        ],
        vec![
            "create",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "10",
            "-c",
            "512",
            "busybox",
        ],
        vec![
            "create",
            "--restart",
            "on-failure:2",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:53:53/udp",
            "busybox",
        ],
        vec!["create", "--rm", "--restart", "no", "busybox"],
        vec![
            "create",
            "--entrypoint",
            "/bin/sh",
            "-it",
            "--hostname",
            "h1",
            "busybox",
            "-c",
            "id",
        ],
        vec![
            "create",
            "--privileged",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--read-only",
            "--network",
            "none",
            "busybox",
        ],
        vec!["run", "-d", "--name", "bg", "busybox", "sleep", "1"],
        vec![
            "create",
            "--network",
            "backend",
            "--ip",
            "10.1.0.9",
            "--network-alias",
            "db",
            "busybox",
        ],
        vec!["create", "-P", "busybox"],
        vec!["create", "--runtime", "runc", "busybox"],
        vec!["create", "--blkio-weight", "300", "busybox"],
        vec![
            "create",
            "--device",
            "/dev/null:/dev/xnull",
            "--device",
            "/dev/zero",
            "--device",
            "/dev/fuse:r",
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "core=-1",
            "--oom-kill-disable",
            "--group-add",
            "1234",
            "--group-add",
            "users",
            "--init",
            "busybox",
        ],
        vec![
            "create",
            "--security-opt",
            &seccomp_opt,
            "--security-opt",
            "no-new-privileges",
            "busybox",
        ],
    ];
    for args in cases {
        let out = Command::new("/usr/bin/docker")
            .args(&args)
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("DOCKER_CONFIG", dir.path())
            .env("FROM_SHELL", "shell value")
            .env_remove("UNSET_VAR")
            .output()
            .context("running Debian's docker client (hack/deps.sh installs docker.io)")?;
        let docker_body = bodies
            .recv_timeout(std::time::Duration::from_secs(10))
            .with_context(|| {
                format!(
                    "docker {args:?} sent no create request: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        let parsed = CreateCommand::try_parse_from(
            std::iter::once("berth").chain(args[1..].iter().copied()),
        )?;
        let lookup = |key: &str| (key == "FROM_SHELL").then(|| "shell value".to_string());
        let ours = parsed.flags.to_create_body(
            &parsed.args[0],
            &parsed.args[1..],
            parsed.detach,
            &lookup,
        )?;
        compare("", &ours, &docker_body).with_context(|| format!("docker {args:?}"))?;
    }
    // Flags docker refuses before sending anything, berth refuses with the same words.
    let refused = Command::new("/usr/bin/docker")
        .args(["create", "--rm", "--restart", "always", "busybox"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", dir.path())
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr)
        .contains("Conflicting options: --restart and --rm"));
    let parsed =
        CreateCommand::try_parse_from(["berth", "--rm", "--restart", "always", "busybox"])?;
    let err = parsed
        .flags
        .to_create_body("busybox", &[], false, &|_| None)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("Conflicting options: --restart and --rm")
    );
    // Flags docker refuses before sending anything, berth refuses with the same words.
    let refused = Command::new("/usr/bin/docker")
        .args(["create", "--rm", "--restart", "always", "busybox"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", dir.path())
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr)
        .contains("Conflicting options: --restart and --rm"));
    let parsed =
        CreateCommand::try_parse_from(["berth", "--rm", "--restart", "always", "busybox"])?;
    let err = parsed
        .flags
        .to_create_body("busybox", &[], false, &|_| None)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("Conflicting options: --restart and --rm")
    );
    Ok(())
}

/// A create answer's warnings reach the user the same way from both CLIs: a
/// `WARNING: ...` line on stderr (the capture server answers a block I/O weight as
/// dockerd does on a host without weight support).
#[test]
fn both_clis_print_the_create_answers_warnings() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("capture.sock");
    let bodies = capture_server(socket.clone())?;
    let host = format!("unix://{}", socket.display());
    let args = ["create", "--blkio-weight", "300", "busybox"];
    let docker = Command::new("/usr/bin/docker")
        .args(args)
        .env("DOCKER_HOST", &host)
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .context("running Debian's docker client (hack/deps.sh installs docker.io)")?;
    let berth = Command::new(berth_e2e::binary("berth")?)
        .args(args)
        .env("DOCKER_HOST", &host)
        .output()
        .context("running berth")?;
    for (name, out) in [("docker", &docker), ("berth", &berth)] {
        let body = bodies
            .recv_timeout(std::time::Duration::from_secs(10))
            .with_context(|| format!("{name} sent no create request"))?;
        assert_eq!(body["HostConfig"]["BlkioWeight"], 300, "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.starts_with("WARNING"))
                .collect::<Vec<_>>(),
            [format!("WARNING: {DISCARDED}")],
            "{name}: {stderr}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0123456789ab",
            "{name}"
        );
    }
    Ok(())
}
