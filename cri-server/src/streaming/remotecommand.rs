//! Kubernetes' remotecommand protocol, shared by exec and attach: the client's streams
//! (SPDY: one per `streamtype`, opened by the client; WebSocket: channels 0 stdin,
//! 1 stdout, 2 stderr, 3 error, 4 resize), the copy between them and a process's
//! [`ProcessIo`], and the outcome on the error stream (v4+: a JSON `metav1.Status`;
//! older versions: the error's text, nothing on success).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::{Engine, ProcessIo};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::channel::{Out, Sink};
use super::server::{respond, Conn, Upgrade};
use super::{spdy, websocket};

/// SPDY subprotocols, most preferred first ("channel.k8s.io" is v1).
const SPDY_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// WebSocket subprotocols ("": a client that names none gets v1 binary framing).
const WS_PROTOCOLS: [&str; 6] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "",
];

/// How long a SPDY client has to open the streams it announced (kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// Which streams the request asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The client's side of a session.
pub(crate) struct Streams {
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    pub stdout: Option<Sink>,
    pub stderr: Option<Sink>,
    pub error: Option<Sink>,
    pub resize: Option<mpsc::Receiver<Vec<u8>>>,
    /// v4 and later: the error stream carries a JSON Status.
    json_status: bool,
    conn: mpsc::Sender<Out>,
}

/// How a session ended, for the error stream.
pub(crate) enum Outcome {
    Exited { code: i32, command: Vec<String> },
    Failed(String),
}

/// Upgrades the connection and gathers the streams `opts` asks for; `Ok(None)` when the
/// client was refused (the response is written) or never opened its streams.
pub(crate) async fn open(conn: Conn, opts: Options) -> io::Result<Option<Streams>> {
    match conn.upgrade {
        Upgrade::Spdy => open_spdy(conn, opts).await,
        Upgrade::WebSocket => open_websocket(conn, opts).await,
    }
}

/// Answers the SPDY upgrade with the agreed subprotocol (`None` after a refusal).
pub(crate) async fn spdy_handshake(
    conn: &mut Conn,
    supported: &[&str],
) -> io::Result<Option<String>> {
    let offered = conn.req.header_values("x-stream-protocol-version");
    let protocol = if offered.is_empty() {
        // A client from before protocol negotiation: v1.
        String::new()
    } else if let Some(p) = offered.iter().find(|p| supported.contains(&p.as_str())) {
        p.clone()
    } else {
        let accepted = supported.join(", ");
        respond(
            &mut conn.stream,
            "403 Forbidden",
            &[("X-Accepted-Stream-Protocol-Versions", &accepted)],
            &format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}\n"),
        )
        .await?;
        return Ok(None);
    };
    let mut head = String::from(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n",
    );
    if !protocol.is_empty() {
        head.push_str(&format!("X-Stream-Protocol-Version: {protocol}\r\n"));
    }
    head.push_str("\r\n");
    conn.stream.write_all(head.as_bytes()).await?;
    Ok(Some(protocol))
}

async fn open_spdy(mut conn: Conn, opts: Options) -> io::Result<Option<Streams>> {
    let Some(protocol) = spdy_handshake(&mut conn, &SPDY_PROTOCOLS).await? else {
        return Ok(None);
    };
    let version = match protocol.as_str() {
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    };
    let idle = conn.idle;
    let (r, w) = conn.split();
    let (mut incoming, out) = spdy::serve(r, w, idle);
    let mut expected = 1;
    expected += usize::from(opts.stdin) + usize::from(opts.stdout);
    expected += usize::from(opts.stderr && !(opts.tty && version >= 2));
    expected += usize::from(opts.tty && version >= 3);
    let mut streams = Streams {
        stdin: None,
        stdout: None,
        stderr: None,
        error: None,
        resize: None,
        json_status: version >= 4,
        conn: out.clone(),
    };
    let gathered = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        let mut seen = 0;
        while seen < expected {
            let Some(s) = incoming.recv().await else {
                return false;
            };
            match s.header("streamtype").unwrap_or("") {
                "error" => streams.error = Some(s.sink),
                "stdin" => streams.stdin = Some(s.rx),
                "stdout" => streams.stdout = Some(s.sink),
                "stderr" => streams.stderr = Some(s.sink),
                "resize" => streams.resize = Some(s.rx),
                other => {
                    tracing::debug!(streamtype = other, "ignoring an unknown stream");
                    continue;
                }
            }
            seen += 1;
        }
        true
    })
    .await;
    if !matches!(gathered, Ok(true)) {
        tracing::debug!("SPDY client did not open its {expected} streams; closing");
        let _ = out.send(Out::Shutdown).await;
        return Ok(None);
    }
    // Streams opened later (none are expected) are refused by dropping the receiver.
    drop(incoming);
    Ok(Some(streams))
}

async fn open_websocket(conn: Conn, opts: Options) -> io::Result<Option<Streams>> {
    let Some(ws) = websocket::accept(conn, &WS_PROTOCOLS).await? else {
        return Ok(None);
    };
    let json_status = ws.protocol.starts_with("v4.") || ws.protocol.starts_with("v5.");
    let sink = |on: bool, ch: u8| on.then(|| Sink::new(ws.out.clone(), u32::from(ch)));
    let (stdin_tx, stdin_rx) = mpsc::channel(32);
    let (resize_tx, resize_rx) = mpsc::channel(8);
    let streams = Streams {
        stdin: opts.stdin.then_some(stdin_rx),
        stdout: sink(opts.stdout, STDOUT),
        stderr: sink(opts.stderr && !opts.tty, STDERR),
        error: sink(true, ERROR),
        resize: opts.tty.then_some(resize_rx),
        json_status,
        conn: ws.out.clone(),
    };
    // Demultiplex the client's messages; a v5 close signal on stdin ends it.
    let mut incoming = ws.incoming;
    tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        while let Some((channel, data)) = incoming.recv().await {
            match (channel, data) {
                (STDIN, Some(d)) => {
                    if let Some(tx) = &stdin {
                        if tx.send(d).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                (STDIN, None) => stdin = None,
                (RESIZE, Some(d)) => {
                    let _ = resize_tx.send(d).await;
                }
                _ => {}
            }
        }
    });
    // The client learns the connection is ready from a first, empty message on the
    // lowest channel it reads.
    let first = [&streams.stdout, &streams.stderr, &streams.error]
        .into_iter()
        .flatten()
        .next();
    if let Some(s) = first {
        s.write(&[]).await?;
    }
    Ok(Some(streams))
}

impl Streams {
    /// Completes when the client's connection is gone.
    pub(crate) async fn closed(&self) {
        self.conn.closed().await
    }

    /// Writes the outcome to the error stream and closes the connection.
    pub(crate) async fn finish(self, outcome: Outcome) {
        if let Some(error) = &self.error {
            let text = if self.json_status {
                Some(status_json(&outcome))
            } else {
                match &outcome {
                    Outcome::Exited { code: 0, .. } => None,
                    Outcome::Exited { code, command } => Some(exit_message(*code, command)),
                    Outcome::Failed(m) => Some(m.clone()),
                }
            };
            if let Some(text) = text {
                let _ = error.write(text.as_bytes()).await;
            }
            error.close().await;
        }
        let _ = self.conn.send(Out::Shutdown).await;
    }
}

fn exit_message(code: i32, command: &[String]) -> String {
    format!(
        "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
    )
}

/// remotecommand v4's Status for an outcome.
fn status_json(outcome: &Outcome) -> String {
    let value = match outcome {
        Outcome::Exited { code: 0, .. } => {
            serde_json::json!({"metadata": {}, "status": "Success"})
        }
        Outcome::Exited { code, command } => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": exit_message(*code, command),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    };
    value.to_string()
}

/// Whose terminal a resize message is for.
#[derive(Clone)]
pub(crate) enum Terminal {
    Exec(String),
    Container(String),
}

#[derive(Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// Copies between the client's streams and the process until the process's output
/// ends; `false` if the client went away first.
pub(crate) async fn pump(
    engine: &Arc<Engine>,
    terminal: Terminal,
    mut io: ProcessIo,
    streams: &mut Streams,
) -> bool {
    let mut tasks = Vec::new();
    if let Some(mut rx) = streams.stdin.take() {
        let mut writer = io.stdin.take();
        tasks.push(tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if let Some(w) = &mut writer {
                    if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                        writer = None;
                    }
                }
            }
            // The client's stdin ended: so does the process's (or the attach's).
            if let Some(mut w) = writer {
                let _ = w.shutdown().await;
            }
        }));
    }
    if let Some(mut rx) = streams.resize.take() {
        let engine = Arc::clone(engine);
        tasks.push(tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(data) = rx.recv().await {
                buf.extend_from_slice(&data);
                for size in take_sizes(&mut buf) {
                    let result = match &terminal {
                        Terminal::Exec(id) => {
                            berth_engine::exec_resize(&engine, id, size.width, size.height).await
                        }
                        Terminal::Container(id) => {
                            berth_engine::resize(&engine, id, size.width, size.height).await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!("terminal resize: {e}");
                    }
                }
            }
        }));
    }
    let outputs = async {
        tokio::join!(
            copy_out(io.stdout.take(), streams.stdout.clone()),
            copy_out(io.stderr.take(), streams.stderr.clone()),
        )
    };
    let done = tokio::select! {
        _ = outputs => true,
        () = streams.closed() => false,
    };
    for t in tasks {
        t.abort();
    }
    done
}

/// The complete size messages at the front of `buf` (Go's encoder writes one JSON object
/// per message, newline-terminated); a partial one stays for the next read.
fn take_sizes(buf: &mut Vec<u8>) -> Vec<TerminalSize> {
    let mut sizes = Vec::new();
    let mut iter = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
    loop {
        match iter.next() {
            Some(Ok(s)) => sizes.push(s),
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(_)) => {
                buf.clear();
                return sizes;
            }
            None => break,
        }
    }
    let used = iter.byte_offset();
    buf.drain(..used);
    sizes
}

async fn copy_out<R: AsyncRead + Unpin>(reader: Option<R>, sink: Option<Sink>) {
    let Some(mut reader) = reader else {
        if let Some(s) = sink {
            s.close().await;
        }
        return;
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut sink = sink;
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(s) = &sink {
                    if s.write(&buf[..n]).await.is_err() {
                        // The client is gone; keep draining so the process is not
                        // blocked on a full pipe.
                        sink = None;
                    }
                }
            }
        }
    }
    if let Some(s) = sink {
        s.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_taken_whole() {
        let mut buf = br#"{"Width":80,"Height":24}
{"Width":100,"Hei"#
            .to_vec();
        let sizes = take_sizes(&mut buf);
        assert_eq!(sizes.len(), 1);
        assert_eq!((sizes[0].width, sizes[0].height), (80, 24));
        buf.extend_from_slice(b"ght\":30}\n");
        let sizes = take_sizes(&mut buf);
        assert_eq!((sizes[0].width, sizes[0].height), (100, 30));
    }

    #[test]
    fn statuses_are_remotecommand_v4() {
        let ok = status_json(&Outcome::Exited {
            code: 0,
            command: vec![],
        });
        assert_eq!(ok, r#"{"metadata":{},"status":"Success"}"#);
        let failed: serde_json::Value = serde_json::from_str(&status_json(&Outcome::Exited {
            code: 3,
            command: vec!["sh".into()],
        }))
        .expect("json");
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
    }
}
