//! Requests the image commands need beyond `Client`: extra headers
//! (`X-Registry-Auth`), raw request bodies (load, import) and streamed answers
//! (pull/push progress messages, save archives).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use crate::client::API_VERSION;

/// One request to the daemon at `host`.
pub struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<(&'a str, Bytes)>,
}

fn socket(host: &str) -> Result<PathBuf> {
    match host.strip_prefix("unix://") {
        Some(p) => Ok(PathBuf::from(p)),
        None if host.starts_with('/') => Ok(PathBuf::from(host)),
        None => bail!("unsupported host {host:?}: berth speaks to unix:// sockets only"),
    }
}

/// Sends `call` and returns the response with its body still to be read.
pub async fn send(host: &str, call: Call<'_>) -> Result<Response<Incoming>> {
    let (request, payload) = match call.body {
        Some((content_type, bytes)) => (
            Call {
                headers: [
                    call.headers,
                    vec![("content-type", content_type.to_string())],
                ]
                .concat(),
                body: None,
                ..call
            },
            bytes,
        ),
        None => (call, Bytes::new()),
    };
    send_body(host, request, Full::new(payload)).await
}

/// A request body fed chunk by chunk through a channel (sent chunked): an `Err`
/// aborts the request.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<hyper::body::Frame<Bytes>>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// Sends `call` (whose `body` is ignored) with `body` as the request body.
pub async fn send_body<B>(host: &str, call: Call<'_>, body: B) -> Result<Response<Incoming>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = socket(host)?;
    let stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "Cannot connect to the berth daemon at unix://{}. Is berthd running?",
            path.display()
        )
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(call.method)
        .uri(format!("/v{API_VERSION}{}", call.path))
        .header("host", "berth");
    for (k, v) in call.headers {
        builder = builder.header(k, v);
    }
    Ok(sender.send_request(builder.body(body)?).await?)
}

/// Fails with the daemon's message (`Error response from daemon: …`) on an error status.
pub async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let body = resp.into_body().collect().await?.to_bytes();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    bail!("Error response from daemon: {message}")
}

/// The whole body as JSON (after `check`).
pub async fn json(resp: Response<Incoming>) -> Result<Value> {
    let resp = check(resp).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    serde_json::from_slice(&body).context("the daemon's answer is not valid JSON")
}

/// Calls `each` for every JSON message of a streamed answer; a message carrying an
/// `error` ends the command with that error.
pub async fn messages(resp: Response<Incoming>, mut each: impl FnMut(&Value)) -> Result<()> {
    let mut body = check(resp).await?.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let handle = |line: &[u8], each: &mut dyn FnMut(&Value)| -> Result<()> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(line).context("a progress message is not JSON")?;
        if let Some(err) = v["error"].as_str() {
            bail!("{err}");
        }
        each(&v);
        Ok(())
    };
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            buf.extend_from_slice(data);
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                handle(&line, &mut each)?;
            }
        }
    }
    handle(&buf, &mut each)
}

/// Copies a streamed answer to `out`.
pub async fn copy_to(resp: Response<Incoming>, out: &mut dyn Write) -> Result<u64> {
    let mut body = check(resp).await?.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            out.write_all(data)?;
            n += data.len() as u64;
        }
    }
    out.flush()?;
    Ok(n)
}

/// Percent-encodes a query value.
pub fn q(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes an image name for a path (keeps `/` and `:`).
pub fn path_name(name: &str) -> String {
    name.split('/')
        .map(q)
        .collect::<Vec<_>>()
        .join("/")
        .replace("%3A", ":")
}
