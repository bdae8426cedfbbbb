//! WebSocket connections for the streaming server: the handshake, and Kubernetes'
//! channel framing (`channel.k8s.io` and its `v4.`/`v5.` and `base64.` variants): every
//! message starts with its channel number (a byte; an ASCII digit in base64 form).

use std::io;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channel::{Activity, Out};
use super::server::{respond, Conn};

/// v5's channel for close signals: `[255, n]` closes channel n.
const CLOSE_CHANNEL: u8 = 255;

/// An upgraded WebSocket connection.
pub(crate) struct WsConn {
    /// The subprotocol agreed ("" when the client named none).
    pub protocol: String,
    /// Messages from the client by channel; a v5 close signal arrives as `(n, None)`.
    pub incoming: mpsc::Receiver<(u8, Option<Vec<u8>>)>,
    pub out: mpsc::Sender<Out>,
}

/// Completes the handshake with the first of the client's subprotocols in `supported`;
/// `Ok(None)` when refused (the response is written).
pub(crate) async fn accept(mut conn: Conn, supported: &[&str]) -> io::Result<Option<WsConn>> {
    let Some(key) = conn.req.header("sec-websocket-key").map(str::to_string) else {
        respond(
            &mut conn.stream,
            "400 Bad Request",
            &[],
            "missing Sec-WebSocket-Key\n",
        )
        .await?;
        return Ok(None);
    };
    let offered = conn.req.header_values("sec-websocket-protocol");
    let protocol = if offered.is_empty() {
        supported.contains(&"").then(String::new)
    } else {
        offered
            .iter()
            .find(|p| supported.contains(&p.as_str()))
            .cloned()
    };
    let Some(protocol) = protocol else {
        let body = format!(
            "requested protocol(s) are not supported: {offered:?}; supports {supported:?}\n"
        );
        respond(&mut conn.stream, "400 Bad Request", &[], &body).await?;
        return Ok(None);
    };
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if !protocol.is_empty() {
        head.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    head.push_str("\r\n");
    conn.stream.write_all(head.as_bytes()).await?;
    let idle = conn.idle;
    let (r, w) = conn.split();
    let ws = WebSocketStream::from_raw_socket(tokio::io::join(r, w), Role::Server, None).await;
    let (in_tx, in_rx) = mpsc::channel(32);
    let (out_tx, out_rx) = mpsc::channel(64);
    let codec = Codec {
        base64: protocol.contains("base64"),
        v5: protocol.starts_with("v5."),
    };
    tokio::spawn(pump(ws, codec, in_tx, out_rx, idle));
    Ok(Some(WsConn {
        protocol,
        incoming: in_rx,
        out: out_tx,
    }))
}

#[derive(Clone, Copy)]
struct Codec {
    base64: bool,
    v5: bool,
}

impl Codec {
    fn encode(self, channel: u8, data: &[u8]) -> Message {
        if self.base64 {
            let mut text = String::from(char::from(b'0' + channel));
            text.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
            Message::text(text)
        } else {
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(channel);
            frame.extend_from_slice(data);
            Message::binary(frame)
        }
    }

    fn decode(self, msg: &[u8]) -> Option<(u8, Option<Vec<u8>>)> {
        let (&first, data) = msg.split_first()?;
        if self.v5 && first == CLOSE_CHANNEL {
            return Some((*data.first()?, None));
        }
        if self.base64 {
            let channel = first.checked_sub(b'0')?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(data)
                .ok()?;
            Some((channel, Some(data)))
        } else {
            Some((first, Some(data.to_vec())))
        }
    }
}

async fn pump<S>(
    mut ws: WebSocketStream<S>,
    codec: Codec,
    in_tx: mpsc::Sender<(u8, Option<Vec<u8>>)>,
    mut out_rx: mpsc::Receiver<Out>,
    idle: Option<Duration>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let idle = idle.unwrap_or(Duration::MAX / 4);
    loop {
        tokio::select! {
            msg = ws.next() => {
                activity.touch();
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if let Some(m) = codec.decode(&data) {
                    if in_tx.send(m).await.is_err() {
                        // Nobody reads the client's messages any more; keep the
                        // connection for output.
                    }
                }
            }
            out = out_rx.recv() => {
                activity.touch();
                let msg = match out {
                    Some(Out::Data { id, data }) => codec.encode(id as u8, &data),
                    Some(Out::Fin { id }) if codec.v5 => {
                        Message::binary(vec![CLOSE_CHANNEL, id as u8])
                    }
                    Some(Out::Shutdown) | None => break,
                    Some(_) => continue,
                };
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
            () = activity.idle(idle) => break,
        }
    }
    drop(in_tx);
    let _ = ws.close(None).await;
    // Read the peer's close answer briefly so the close handshake completes.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
