//! What the CRI streaming e2e tests share: building and running the clients of each
//! protocol (the Go spdystream client, the Python websocket-client one), the URLs from
//! Exec, Attach and PortForward, remotecommand status checks, an httpd in a pod.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_cri::v1 as cri;
use serde_json::Value;

use crate::cri_common::{self, container, host_pod, Client, Setup};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn build_spdy_client(dir: &Path) -> Result<PathBuf> {
    let out = dir.join("spdy-client");
    let status = Command::new(workspace_root().join("test/e2e/go/build-spdy.sh"))
        .arg(&out)
        .status()
        .context("running test/e2e/go/build-spdy.sh (needs hack/deps.sh's Go packages)")?;
    if !status.success() {
        bail!("building the spdystream client failed");
    }
    Ok(out)
}

/// Runs a client, feeding `stdin`, and parses the JSON object it prints.
pub fn run_client(mut cmd: Command, stdin: &str) -> Result<Value> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut pipe = child.stdin.take().context("stdin")?;
    pipe.write_all(stdin.as_bytes())?;
    drop(pipe);
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).with_context(|| {
        format!(
            "{cmd:?}: no JSON; stdout {text:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn spdy(client: &Path, args: &[&str], stdin: &str) -> Result<Value> {
    let mut cmd = Command::new(client);
    cmd.args(args);
    run_client(cmd, stdin)
}

pub fn ws(args: &[&str]) -> Result<Value> {
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("test/e2e/py/ws-client.py"))
        .args(args);
    run_client(cmd, "")
}

#[derive(Clone, Copy, Default)]
pub struct Opts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub const OUT_ERR: Opts = Opts {
    stdin: false,
    stdout: true,
    stderr: true,
    tty: false,
};

pub fn exec_url(client: &Client, id: &str, cmd: &[&str], o: Opts) -> Result<String> {
    let mut rt = client.runtime()?;
    Ok(client
        .block_on(rt.exec(cri::ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty: o.tty,
            stdin: o.stdin,
            stdout: o.stdout,
            stderr: o.stderr,
        }))?
        .into_inner()
        .url)
}

pub fn attach_url(client: &Client, id: &str, o: Opts) -> Result<String> {
    let mut rt = client.runtime()?;
    Ok(client
        .block_on(rt.attach(cri::AttachRequest {
            container_id: id.into(),
            tty: o.tty,
            stdin: o.stdin,
            stdout: o.stdout,
            stderr: o.stderr,
        }))?
        .into_inner()
        .url)
}

pub fn port_forward_url(client: &Client, pod: &str, ports: &[i32]) -> Result<String> {
    let mut rt = client.runtime()?;
    Ok(client
        .block_on(rt.port_forward(cri::PortForwardRequest {
            pod_sandbox_id: pod.into(),
            port: ports.to_vec(),
        }))?
        .into_inner()
        .url)
}

/// The exec flags of the Go client for `o`.
pub fn flags(o: Opts) -> Vec<&'static str> {
    let mut f = Vec::new();
    for (on, flag) in [
        (o.stdin, "-stdin"),
        (o.stdout, "-stdout"),
        (o.stderr, "-stderr"),
        (o.tty, "-tty"),
    ] {
        if on {
            f.push(flag);
        }
    }
    f
}

pub fn status(v: &Value) -> Result<Value> {
    let text = v["error"].as_str().context("no error stream text")?;
    serde_json::from_str(text).with_context(|| format!("error stream {text:?} is not JSON"))
}

pub fn assert_success(v: &Value) -> Result<()> {
    let s = status(v)?;
    assert_eq!(s["status"], "Success", "{v}");
    Ok(())
}

pub fn assert_exit(v: &Value, code: i32) -> Result<()> {
    let s = status(v)?;
    assert_eq!(s["status"], "Failure", "{v}");
    assert_eq!(s["reason"], "NonZeroExitCode", "{v}");
    assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode", "{v}");
    assert_eq!(
        s["details"]["causes"][0]["message"],
        code.to_string(),
        "{v}"
    );
    Ok(())
}

pub fn sleeper(setup: &Setup, name: &str) -> Result<(String, String, cri_common::PodGuard)> {
    let pod = host_pod(name, &setup.work);
    let (pod_id, guard) = setup.start_pod(&pod)?;
    let id = setup.client.create_and_start(
        &pod_id,
        &pod,
        container("main", &setup.base(), "sleep 600", ""),
    )?;
    Ok((pod_id, id, guard))
}

/// A bridge network of the test's own, removed when the test ends.
pub struct BridgeGuard(pub &'static str);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

pub fn httpd(
    setup: &Setup,
    pod: &cri::PodSandboxConfig,
    pod_id: &str,
    port: u16,
    text: &str,
) -> Result<String> {
    let script = format!(
        "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {port} -h /www"
    );
    let id = setup.client.create_and_start(
        pod_id,
        pod,
        container("httpd", &setup.base(), &script, ""),
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = setup.client.exec(
            &id,
            &["wget", "-qO-", &format!("http://127.0.0.1:{port}/")],
            5,
        )?;
        if String::from_utf8_lossy(&probe.stdout).contains(text) {
            return Ok(id);
        }
        if Instant::now() > deadline {
            bail!("httpd never answered on {port}: {probe:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub const GET: &str = "GET / HTTP/1.0\r\n\r\n";
