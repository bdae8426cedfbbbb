//! Streamed replies: JSON message lines (pull, push, load progress) and raw bytes (save),
//! and request bodies spooled to a file (load, import).

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::super::{ApiError, ApiRequest, Body, Reply};

/// A body fed by a channel; the reply ends when every sender is dropped.
pub fn channel_body(depth: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(depth);
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, std::io::Error>(Frame::data(b))))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// Docker's JSON message stream: one JSON document per line.
#[derive(Clone)]
pub struct Messages {
    tx: mpsc::Sender<Bytes>,
}

impl Messages {
    pub fn new() -> (Messages, Reply) {
        let (tx, body) = channel_body(256);
        (Messages { tx }, Reply::stream("application/json", body))
    }

    /// Sends one message; a client that went away is not an error of the operation.
    pub async fn send(&self, msg: Value) {
        let mut line = msg.to_string();
        line.push_str("\r\n");
        let _ = self.tx.send(Bytes::from(line)).await;
    }

    /// Sends from a non-async context (progress callbacks), dropping the message if
    /// the client is slower than 256 messages behind.
    pub fn try_send(&self, msg: Value) {
        let mut line = msg.to_string();
        line.push_str("\r\n");
        let _ = self.tx.try_send(Bytes::from(line));
    }

    /// Whether the client went away (the reply's body was dropped).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub async fn status(&self, status: &str) {
        self.send(serde_json::json!({ "status": status })).await;
    }

    /// An error after the stream began, as Docker reports it.
    pub async fn error(&self, message: &str) {
        self.send(serde_json::json!({
            "errorDetail": { "message": message },
            "error": message,
        }))
        .await;
    }
}

/// A blocking writer whose bytes become a streamed reply (for `save`).
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 << 10;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Bytes>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buf()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send_buf();
    }
}

/// Spools the request body into a temp file under `dir` (removed when dropped).
pub async fn spool_body(
    req: &mut ApiRequest,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let internal = |e: std::io::Error| {
        ApiError::Internal(format!(
            "spooling the request body under {}: {e}",
            dir.display()
        ))
    };
    let tmp = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(dir)
        .map_err(internal)?;
    let file = tmp.reopen().map_err(internal)?;
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let Some(mut body) = req.take_body() else {
        return Err(ApiError::BadRequest("the request has no body".into()));
    };
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("reading the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            out.write_all(data).await.map_err(internal)?;
        }
    }
    out.flush().await.map_err(internal)?;
    Ok(tmp)
}
