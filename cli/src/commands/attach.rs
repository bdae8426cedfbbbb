//! `attach`, and the attached foreground shared by `run` and `start -a`: attach before
//! the start (so no output is missed), wait with the headers received before the start
//! (so the daemon has the state the exit is measured from), start, then stream until
//! the output ends or the user detaches; the exit code is the container's.

use anyhow::{anyhow, Context};
use bytes::Bytes;
use hyper::Method;
use tokio::task::JoinHandle;

use super::container::enc;
use super::hijack::{self, End, Streams};
use super::Output;
use crate::client::Client;

/// What to attach.
#[derive(Debug, Clone, Default)]
pub struct AttachOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// docker's syntax; empty: ctrl-p,ctrl-q.
    pub detach_keys: String,
    /// Forward this process's signals to the container.
    pub sig_proxy: bool,
}

/// How an attached session ended.
pub enum Outcome {
    /// The container exited with this code.
    Exited(i64),
    /// The user typed the detach keys; the container runs on.
    Detached,
    /// The start failed (nothing ran).
    StartFailed(anyhow::Error),
}

/// Sends `POST /containers/{id}/wait?condition=…` and returns, once the daemon
/// answered with its headers, a task giving the exit code.
pub async fn wait_task(
    client: &Client,
    id: &str,
    condition: &str,
) -> anyhow::Result<JoinHandle<anyhow::Result<i64>>> {
    let body = client
        .stream(
            Method::POST,
            &format!("/containers/{}/wait?condition={condition}", enc(id)),
            Bytes::new(),
            "application/json",
        )
        .await?;
    Ok(tokio::spawn(async move {
        use http_body_util::BodyExt;
        let bytes = body.collect().await?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the daemon's wait answer: {bytes:?}"))?;
        if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
            return Err(anyhow!("{m}"));
        }
        v["StatusCode"]
            .as_i64()
            .ok_or_else(|| anyhow!("the daemon's wait answer has no StatusCode: {v}"))
    }))
}

/// Attaches to `id`, starts it when `start`, and streams until the end.
pub async fn attached(
    client: &Client,
    id: &str,
    opts: &AttachOpts,
    start: bool,
) -> anyhow::Result<Outcome> {
    let keys = hijack::parse_detach_keys(&opts.detach_keys)?;
    let path = format!(
        "/containers/{}/attach?stream=1&stdin={}&stdout={}&stderr={}&detachKeys={}",
        enc(id),
        opts.stdin as u8,
        opts.stdout as u8,
        opts.stderr as u8,
        enc(if opts.detach_keys.is_empty() {
            hijack::DEFAULT_DETACH_KEYS
        } else {
            &opts.detach_keys
        }),
    );
    let conn = client.hijack(&path, None).await?;
    let condition = if start { "next-exit" } else { "not-running" };
    let waiter = wait_task(client, id, condition).await?;
    let signals = if opts.sig_proxy {
        hijack::proxy_signals(client, id)
    } else {
        Vec::new()
    };
    let session = tokio::spawn(hijack::stream(
        conn,
        Streams {
            stdin: opts.stdin,
            tty: opts.tty,
            detach_keys: keys,
        },
    ));
    let stop_all = |handles: &[JoinHandle<()>]| handles.iter().for_each(JoinHandle::abort);
    if start {
        if let Err(e) = client
            .call(
                Method::POST,
                &format!("/containers/{}/start", enc(id)),
                None,
            )
            .await
        {
            // Dropping the session restores the terminal.
            session.abort();
            let _ = session.await;
            stop_all(&signals);
            waiter.abort();
            return Ok(Outcome::StartFailed(e.into()));
        }
    }
    let monitor = if opts.tty {
        hijack::monitor_size(client, format!("/containers/{}/resize", enc(id)))
    } else {
        None
    };
    let end = session.await.context("the attach session")?;
    stop_all(&signals);
    if let Some(m) = monitor {
        m.abort();
    }
    match end? {
        End::Detached => {
            waiter.abort();
            Ok(Outcome::Detached)
        }
        End::Done => Ok(Outcome::Exited(
            waiter.await.context("waiting for the container")??,
        )),
    }
}

/// `attach`: a running container's streams on this terminal.
pub async fn attach(
    client: &Client,
    container: &str,
    no_stdin: bool,
    sig_proxy: bool,
    detach_keys: Option<&str>,
) -> anyhow::Result<Output> {
    let info = client
        .get_json(&format!("/containers/{}/json", enc(container)))
        .await?;
    let state = &info["State"];
    if state["Paused"].as_bool() == Some(true) {
        anyhow::bail!("You cannot attach to a paused container, unpause it first");
    }
    if state["Running"].as_bool() != Some(true) {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    let id = info["Id"].as_str().unwrap_or(container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let opts = AttachOpts {
        stdin: !no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false),
        stdout: true,
        stderr: true,
        tty,
        detach_keys: detach_keys.unwrap_or("").to_string(),
        // docker proxies signals on attach only without a TTY.
        sig_proxy: sig_proxy && !tty,
    };
    match attached(client, &id, &opts, false).await? {
        Outcome::Exited(code) => Ok(Output::text(String::new()).with_code(exit_code(code))),
        Outcome::Detached => {
            Ok(Output::text(String::new()).failing(anyhow!("read escape sequence")))
        }
        Outcome::StartFailed(e) => Err(e),
    }
}

/// A container's exit code as a process's.
pub fn exit_code(code: i64) -> u8 {
    code.clamp(0, 255) as u8
}

/// `start -a [-i]`: one container, attached as `run` attaches.
pub async fn start(
    client: &Client,
    containers: &[String],
    interactive: bool,
    detach_keys: Option<&str>,
) -> anyhow::Result<Output> {
    let [container] = containers else {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    };
    let info = client
        .get_json(&format!("/containers/{}/json", enc(container)))
        .await?;
    let id = info["Id"].as_str().unwrap_or(container).to_string();
    let config = &info["Config"];
    let tty = config["Tty"].as_bool().unwrap_or(false);
    let opts = AttachOpts {
        stdin: interactive && config["OpenStdin"].as_bool().unwrap_or(false),
        stdout: true,
        stderr: true,
        tty,
        detach_keys: detach_keys.unwrap_or("").to_string(),
        sig_proxy: !tty,
    };
    match attached(client, &id, &opts, true).await? {
        Outcome::Exited(code) => Ok(Output::text(String::new()).with_code(exit_code(code))),
        Outcome::Detached => Ok(Output::text(String::new())),
        Outcome::StartFailed(e) => Err(e),
    }
}
