//! `GET /containers/{id}/attach/ws`: the container's main process over a WebSocket, as
//! dockerd serves it. Query: `stream`, `logs`, `detachKeys`, and `stdin`, `stdout`,
//! `stderr`, which dockerd reads only from API 1.42 on (before, all three are attached
//! whatever the query says; berth speaks 1.41, so the SDKs' defaults, which name no
//! `stdin`, still send input).
//!
//! Output is never multiplexed: every chunk of stdout or stderr is one message, binary
//! from API 1.28 on and text before (with the bytes as they are). Every message from
//! the client, text or binary, is input, scanned for the detach keys. The session ends
//! when the output ends (a close frame is sent), when the client closes or goes away
//! (the container's stdin is released as on a hijacked attach's end) or on the detach
//! keys; the container runs on in every case.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{self as engine, AttachOptions, OutputReader, ProcessIo, StdinWriter};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper::{HeaderMap, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::super::hijack::{self, DetachScanner, End};
use super::{attach, ApiError, ApiRequest, Reply};
use crate::Daemon;

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// The message type output goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// API 1.28 and later.
    Binary,
    /// Older clients: text frames carrying the bytes as they are.
    Text,
}

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &mut ApiRequest,
) -> Result<Reply, ApiError> {
    let stream = req.query_bool("stream")?;
    let logs = req.query_bool("logs")?;
    let (stdin, stdout, stderr) = if req.version >= (1, 42) {
        (
            req.query_bool("stdin")?,
            req.query_bool("stdout")?,
            req.query_bool("stderr")?,
        )
    } else {
        (true, true, true)
    };
    let keys = hijack::parse_detach_keys(req.query("detachKeys").unwrap_or(""))?;
    if !stream && logs {
        return Err(ApiError::BadRequest(
            "attach with logs=1 and stream=0 is not supported: read GET /containers/{id}/logs instead".into(),
        ));
    }
    let record = attach::attachable(daemon, reference)?;
    let accept = accept_key(&req.headers)?;
    let on_upgrade = req.take_upgrade().ok_or_else(|| {
        ApiError::BadRequest("not a WebSocket handshake: no Upgrade header".into())
    })?;
    let io = match stream {
        true => Some(
            engine::attach(
                &daemon.engine,
                &record.id,
                AttachOptions {
                    stdin,
                    stdout,
                    stderr,
                    logs,
                },
            )
            .await?,
        ),
        // Neither the past nor the live output asked for: the socket closes at once.
        false => None,
    };
    let payload = match req.version >= (1, 28) {
        true => Payload::Binary,
        false => Payload::Text,
    };
    let id = record.id;
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "the WebSocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let end = session(ws, io, keys, payload).await;
        tracing::debug!(container = %id, ?end, "WebSocket attach ended");
    });
    Reply::empty(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header_value("sec-websocket-accept", &accept)
}

/// Checks the request is a WebSocket (RFC 6455, version 13) handshake and answers its
/// key.
fn accept_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let has_token = |name: hyper::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let bad = |what: &str| ApiError::BadRequest(format!("not a WebSocket handshake: {what}"));
    if !has_token(hyper::header::UPGRADE, "websocket") {
        return Err(bad("'websocket' not in the Upgrade header"));
    }
    if !has_token(hyper::header::CONNECTION, "upgrade") {
        return Err(bad("'upgrade' not in the Connection header"));
    }
    match headers.get(hyper::header::SEC_WEBSOCKET_VERSION) {
        Some(v) if v.as_bytes() == b"13" => {}
        _ => return Err(bad("Sec-WebSocket-Version is not 13")),
    }
    let key = headers
        .get(hyper::header::SEC_WEBSOCKET_KEY)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad("no Sec-WebSocket-Key"))?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// Runs the attach on the WebSocket until the output ends, the client leaves or
/// detaches; then closes it.
async fn session(ws: Ws, io: Option<ProcessIo>, keys: Vec<u8>, payload: Payload) -> End {
    let (mut sink, mut source) = ws.split();
    let end = match io {
        None => End::Done,
        Some(ProcessIo {
            stdin,
            stdout,
            stderr,
            ..
        }) => {
            let has_output = stdout.is_some() || stderr.is_some();
            let output = async {
                if !has_output {
                    // Input only: the session lasts as long as the client.
                    return std::future::pending().await;
                }
                if let Err(e) = copy_output(&mut sink, stdout, stderr, payload).await {
                    tracing::debug!(error = %e, "writing to the WebSocket failed");
                }
            };
            tokio::select! {
                () = output => End::Done,
                end = copy_input(&mut source, stdin, keys) => end,
            }
        }
    };
    close(sink, source).await;
    end
}

/// Sends the close frame (unless the client's came first and was answered) and reads
/// the client's answer briefly, so the close handshake completes.
async fn close(sink: SplitSink<Ws, Message>, source: SplitStream<Ws>) {
    let Ok(mut ws) = sink.reunite(source) else {
        return;
    };
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Client messages → stdin, watching for the detach keys. Without stdin (a container
/// made without `OpenStdin`, or the process's stdin closed) messages are read and
/// dropped, so the client's leaving is noticed. Ends when the client closes or goes
/// away (`Done`, the stdin released) or types the detach keys (`Detached`).
async fn copy_input(
    source: &mut SplitStream<Ws>,
    mut stdin: Option<StdinWriter>,
    keys: Vec<u8>,
) -> End {
    let mut scanner = DetachScanner::new(keys);
    let mut pass = Vec::new();
    while let Some(msg) = source.next().await {
        let data = match msg {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Text(t)) => t.into(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Some(w) = stdin.as_mut() else {
            continue;
        };
        pass.clear();
        let detached = scanner.feed(&data, &mut pass);
        if !pass.is_empty() {
            let written = match w.write_all(&pass).await {
                Ok(()) => w.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::debug!(error = %e, "the container's stdin is closed");
                stdin = None;
            }
        }
        if detached {
            return End::Detached;
        }
    }
    if let Some(mut w) = stdin {
        let _ = w.shutdown().await;
    }
    End::Done
}

/// The process's output → client, one message per chunk read, stdout and stderr alike.
async fn copy_output(
    sink: &mut SplitSink<Ws, Message>,
    mut stdout: Option<OutputReader>,
    mut stderr: Option<OutputReader>,
    payload: Payload,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut out_buf = vec![0u8; 32 * 1024];
    let mut err_buf = vec![0u8; 32 * 1024];
    while stdout.is_some() || stderr.is_some() {
        let (from_stdout, n) = tokio::select! {
            r = hijack::read_some(&mut stdout, &mut out_buf) => (true, r.unwrap_or(0)),
            r = hijack::read_some(&mut stderr, &mut err_buf) => (false, r.unwrap_or(0)),
        };
        let data = match (from_stdout, n) {
            (true, 0) => {
                stdout = None;
                continue;
            }
            (false, 0) => {
                stderr = None;
                continue;
            }
            (true, n) => &out_buf[..n],
            (false, n) => &err_buf[..n],
        };
        sink.send(message(payload, data)).await?;
    }
    Ok(())
}

fn message(payload: Payload, data: &[u8]) -> Message {
    let data = bytes::Bytes::copy_from_slice(data);
    match payload {
        Payload::Binary => Message::Binary(data),
        // A raw frame: the output need not be UTF-8, which `Message::Text` insists on;
        // dockerd's old text frames carry the bytes unchecked too.
        Payload::Text => Message::Frame(Frame::message(data, OpCode::Data(Data::Text), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, hyper::header::HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_handshake_is_checked_and_answered() {
        // RFC 6455's own example key and answer.
        let good = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(
            accept_key(&handshake(&good)).ok().as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        for drop in 0..good.len() {
            let partial: Vec<_> = good
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, p)| *p)
                .collect();
            let err = accept_key(&handshake(&partial))
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|m| m.starts_with("not a WebSocket handshake")),
                "without {:?}: {err:?}",
                good[drop].0
            );
        }
        let mut old = good;
        old[2] = ("sec-websocket-version", "8");
        assert!(accept_key(&handshake(&old)).is_err());
        let mut tcp = good;
        tcp[0] = ("upgrade", "tcp");
        assert!(accept_key(&handshake(&tcp)).is_err());
    }

    #[test]
    fn output_goes_out_binary_or_as_raw_text_frames() {
        assert_eq!(
            message(Payload::Binary, b"hi\n"),
            Message::binary(b"hi\n".to_vec())
        );
        // Not UTF-8, still sent as it is.
        match message(Payload::Text, b"\xff\xfe") {
            Message::Frame(frame) => {
                assert_eq!(frame.header().opcode, OpCode::Data(Data::Text));
                assert_eq!(frame.payload(), &b"\xff\xfe"[..]);
            }
            other => panic!("expected a raw text frame, got {other:?}"),
        }
    }
}
