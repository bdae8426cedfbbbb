//! What handlers write to, whatever the protocol: a [`Sink`] is one SPDY stream or one
//! WebSocket channel, written through the connection's single writer task.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// A request to a connection's writer task.
#[derive(Debug)]
pub(crate) enum Out {
    /// Data on a stream (SPDY) or channel (WebSocket).
    Data { id: u32, data: Vec<u8> },
    /// The end of the server's side of a stream (SPDY FIN; WebSocket v5 close signal).
    Fin { id: u32 },
    /// SPDY only: accept a stream the client opened.
    Reply { id: u32 },
    /// SPDY only: refuse or cancel a stream.
    Reset { id: u32, status: u32 },
    /// SPDY only: answer a PING.
    Ping { id: u32 },
    /// Close the connection once what was queued before is written.
    Shutdown,
}

/// The server's side of one stream or channel.
#[derive(Clone, Debug)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Out>,
    id: u32,
}

impl Sink {
    pub(crate) fn new(tx: mpsc::Sender<Out>, id: u32) -> Sink {
        Sink { tx, id }
    }

    pub(crate) async fn write(&self, data: &[u8]) -> io::Result<()> {
        self.tx
            .send(Out::Data {
                id: self.id,
                data: data.to_vec(),
            })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
    }

    pub(crate) async fn close(&self) {
        let _ = self.tx.send(Out::Fin { id: self.id }).await;
    }
}

/// When a connection last read or wrote, for the idle timeout.
#[derive(Clone)]
pub(crate) struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing was read or written for `idle`.
    pub(crate) async fn idle(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let since = self.start.elapsed().saturating_sub(last);
            if since >= idle {
                return;
            }
            tokio::time::sleep(idle - since).await;
        }
    }
}
