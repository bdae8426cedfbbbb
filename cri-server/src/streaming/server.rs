//! The streaming server's HTTP/1.1 front: one request per connection, `GET
//! /{exec,attach,portforward}/<token>`, upgraded to SPDY/3.1 or WebSocket.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{attach, exec, portforward, StreamRequest};
use crate::Cri;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A parsed request head.
pub(crate) struct HttpRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// Every value of header `name` (case-insensitive), comma-separated lists split.
    pub(crate) fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    fn upgrade(&self) -> Option<String> {
        let connection = self.header_values("connection");
        if !connection.iter().any(|c| c.eq_ignore_ascii_case("upgrade")) {
            return None;
        }
        self.header("upgrade").map(str::to_ascii_lowercase)
    }
}

/// Which protocol the client upgraded to; the stream is handed on with any bytes read
/// past the request head.
pub(crate) enum Upgrade {
    Spdy,
    WebSocket,
}

/// Accepts connections until the task is dropped.
pub(crate) async fn run(listener: std::net::TcpListener, cri: Cri) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("streaming server: {e}");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let cri = cri.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, cri).await {
                        tracing::debug!(%peer, "streaming connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("streaming server accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// A connection's byte stream: plain TCP or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn handle(tcp: TcpStream, cri: Cri) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let tls = cri.streaming().tls.clone();
    let (stream, req, rest) = tokio::time::timeout(HEAD_TIMEOUT, async move {
        let mut stream: Box<dyn Io> = match tls {
            Some(acceptor) => Box::new(acceptor.accept(tcp).await?),
            None => Box::new(tcp),
        };
        let (req, rest) = read_head(&mut stream).await?;
        Ok::<_, io::Error>((stream, req, rest))
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake or request head"))??;
    let mut stream = stream;
    let mut parts = req.path.trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let request = cri.streaming().tokens.consume(token);
    let request = match (kind, request) {
        ("exec", Some(r @ StreamRequest::Exec(_)))
        | ("attach", Some(r @ StreamRequest::Attach(_)))
        | ("portforward", Some(r @ StreamRequest::PortForward { .. })) => r,
        _ => {
            return respond(
                &mut stream,
                "404 Not Found",
                &[],
                "unknown, expired or already used streaming token\n",
            )
            .await
        }
    };
    let upgrade = match req.upgrade().as_deref() {
        Some("spdy/3.1") => Upgrade::Spdy,
        Some("websocket") => Upgrade::WebSocket,
        _ => {
            return respond(
                &mut stream,
                "400 Bad Request",
                &[],
                "Upgrade request required (SPDY/3.1 or websocket)\n",
            )
            .await
        }
    };
    let idle = cri.streaming().idle;
    let conn = Conn {
        stream,
        rest,
        req,
        upgrade,
        idle,
    };
    match request {
        StreamRequest::Exec(r) => exec::serve(&cri, r, conn).await,
        StreamRequest::Attach(r) => attach::serve(&cri, r, conn).await,
        StreamRequest::PortForward { sandbox_id, netns } => {
            portforward::serve(sandbox_id, netns, conn).await
        }
    }
}

/// An accepted connection about to be upgraded.
pub(crate) struct Conn {
    pub stream: Box<dyn Io>,
    /// Bytes read past the request head.
    pub rest: Vec<u8>,
    pub req: HttpRequest,
    pub upgrade: Upgrade,
    pub idle: Option<std::time::Duration>,
}

impl Conn {
    /// The read half with the bytes already read before it, and the write half.
    pub(crate) fn split(
        self,
    ) -> (
        impl AsyncRead + Unpin + Send + 'static,
        impl AsyncWrite + Unpin + Send + 'static,
    ) {
        let (r, w) = tokio::io::split(self.stream);
        (io::Cursor::new(self.rest).chain(r), w)
    }
}

/// Writes a plain response and ends the exchange.
pub(crate) async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    w.write_all(text.as_bytes()).await?;
    w.shutdown().await
}

async fn read_head<R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<(HttpRequest, Vec<u8>)> {
    let mut buf = Vec::with_capacity(2048);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let rest = buf[end + 4..].to_vec();
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    Ok((parse_head(&head)?, rest))
}

fn parse_head(head: &str) -> io::Result<HttpRequest> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or_else(|| bad("empty request"))?;
    let mut words = request_line.split(' ');
    let (_method, target) = (
        words.next().ok_or_else(|| bad("no method"))?,
        words.next().ok_or_else(|| bad("no request target"))?,
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = form_pairs(query);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(HttpRequest {
        path: path.to_string(),
        query,
        headers,
    })
}

/// `a=1&b=2` (values percent-decoded only for the digits and letters used here).
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_parse() {
        let req = parse_head(
            "GET /portforward/abc?port=80&port=8080 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: channel.k8s.io",
        )
        .expect("parse");
        assert_eq!(req.path, "/portforward/abc");
        assert_eq!(req.query.len(), 2);
        assert_eq!(req.upgrade().as_deref(), Some("spdy/3.1"));
        assert_eq!(
            req.header_values("x-stream-protocol-version"),
            vec!["v4.channel.k8s.io", "channel.k8s.io"]
        );
    }
}
