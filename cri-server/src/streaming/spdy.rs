//! A SPDY/3.1 server connection after the HTTP upgrade: the client opens streams, the
//! server replies to each and hands it on; data frames are routed to their stream.
//!
//! One task reads frames and one writes them; handlers see a stream as a receiver of
//! the client's data (closed at its FIN) and a [`Sink`] for theirs. Flow control
//! windows are not enforced (Go's spdystream, the client kubelet and crictl use, does
//! not send WINDOW_UPDATE either).

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::channel::{Activity, Out, Sink};
use super::spdy_frame::{Frame, FrameReader, FrameWriter, Headers, RST_CANCEL, RST_PROTOCOL_ERROR};

/// A stream the client opened.
pub(crate) struct SpdyStream {
    pub id: u32,
    pub headers: Headers,
    /// The client's data; ends at its FIN, RST_STREAM or the connection's end.
    pub rx: mpsc::Receiver<Vec<u8>>,
    pub sink: Sink,
}

impl SpdyStream {
    /// A header's first value (names are lower-case on the wire).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// Runs a connection: returns the receiver of the streams the client opens (it ends
/// when the connection does) and the sender that writes frames.
pub(crate) fn serve<R, W>(
    reader: R,
    writer: W,
    idle: Option<Duration>,
) -> (mpsc::Receiver<SpdyStream>, mpsc::Sender<Out>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(64);
    let (streams_tx, streams_rx) = mpsc::channel(16);
    let activity = Activity::new();
    tokio::spawn(write_loop(writer, out_rx, activity.clone()));
    let tx = out_tx.clone();
    tokio::spawn(async move {
        let read = read_loop(reader, streams_tx, tx.clone(), activity.clone());
        let idle = idle.unwrap_or(Duration::MAX / 4);
        // Ends with the client, when idle, or once the writer closed the connection.
        let result = tokio::select! {
            r = read => r,
            () = activity.idle(idle) => {
                tracing::debug!("streaming connection idle for {idle:?}; closing it");
                Ok(())
            }
            () = tx.closed() => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!("SPDY connection: {e}");
        }
        let _ = tx.send(Out::Shutdown).await;
    });
    (streams_rx, out_tx)
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    streams_tx: mpsc::Sender<SpdyStream>,
    out: mpsc::Sender<Out>,
    activity: Activity,
) -> io::Result<()> {
    let mut frames = FrameReader::new();
    let mut open: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    while let Some(frame) = frames.read(&mut reader).await? {
        activity.touch();
        match frame {
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => {
                if open.contains_key(&stream) {
                    let _ = out
                        .send(Out::Reset {
                            id: stream,
                            status: RST_PROTOCOL_ERROR,
                        })
                        .await;
                    continue;
                }
                let (tx, rx) = mpsc::channel(32);
                if !fin {
                    open.insert(stream, tx);
                }
                let _ = out.send(Out::Reply { id: stream }).await;
                let s = SpdyStream {
                    id: stream,
                    headers,
                    rx,
                    sink: Sink::new(out.clone(), stream),
                };
                if streams_tx.send(s).await.is_err() {
                    // Nobody takes new streams any more: refuse it.
                    open.remove(&stream);
                    let _ = out
                        .send(Out::Reset {
                            id: stream,
                            status: RST_CANCEL,
                        })
                        .await;
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some(tx) = open.get(&stream) {
                    // A handler that dropped its receiver no longer wants the data.
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        open.remove(&stream);
                    }
                }
                if fin {
                    open.remove(&stream);
                }
            }
            Frame::RstStream { stream } => {
                open.remove(&stream);
            }
            Frame::Ping { id } => {
                let _ = out.send(Out::Ping { id }).await;
            }
            Frame::GoAway => break,
            Frame::Ignored => {}
        }
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Out>,
    activity: Activity,
) {
    let mut frames = FrameWriter::new();
    let mut last_stream = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(out) = rx.recv().await {
        buf.clear();
        match out {
            Out::Data { id, data } => {
                for chunk in data.chunks(32 * 1024) {
                    FrameWriter::data(&mut buf, id, false, chunk);
                }
            }
            Out::Fin { id } => FrameWriter::data(&mut buf, id, true, &[]),
            Out::Reply { id } => {
                last_stream = last_stream.max(id);
                if let Err(e) = frames.syn_reply(&mut buf, id) {
                    tracing::debug!("SPDY reply: {e}");
                    break;
                }
            }
            Out::Reset { id, status } => FrameWriter::rst_stream(&mut buf, id, status),
            Out::Ping { id } => FrameWriter::ping(&mut buf, id),
            Out::Shutdown => {
                FrameWriter::goaway(&mut buf, last_stream);
                let _ = writer.write_all(&buf).await;
                break;
            }
        }
        activity.touch();
        if writer.write_all(&buf).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}
