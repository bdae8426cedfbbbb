//! Hijacked connections: attach and exec start hand the client's connection over to a
//! process's streams. With `Upgrade: tcp` the answer is `101 Switching Protocols` and
//! the socket carries stdin one way and output the other; without it (old clients),
//! dockerd answers `200` and streams the output as the body, which is what berth does
//! too (stdin cannot arrive then).
//!
//! Output is raw with a TTY and in Docker's stdcopy frames without one: an 8-byte
//! header (stream 1 for stdout, 2 for stderr, three zero bytes, the big-endian u32
//! length) before each chunk. Stdin is scanned for the detach keys (default Ctrl-P
//! Ctrl-Q): when they arrive the session ends and the process keeps running.

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;

use berth_engine::ProcessIo;
use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{ApiError, ApiRequest, Reply};

/// The content type of a TTY's raw stream.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
/// The content type of stdcopy frames.
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// Docker's default detach keys: Ctrl-P Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

/// A client's connection after the hijack.
pub trait Conn: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Conn for T {}

/// The hijacked connection, and a duplicate of its socket to notice the client
/// hanging up while nothing is written to it.
pub struct Hijacked {
    pub conn: Box<dyn Conn>,
    hangup: Option<OwnedFd>,
}

impl Hijacked {
    fn from_upgraded(upgraded: Upgraded) -> Hijacked {
        match upgraded.downcast::<TokioIo<UnixStream>>() {
            Ok(parts) => {
                let stream = parts.io.into_inner();
                let hangup = stream.as_fd().try_clone_to_owned().ok();
                Hijacked {
                    conn: Box::new(Prefixed {
                        prefix: parts.read_buf,
                        inner: stream,
                    }),
                    hangup,
                }
            }
            Err(upgraded) => Hijacked {
                conn: Box::new(TokioIo::new(upgraded)),
                hangup: None,
            },
        }
    }
}

/// What runs on the hijacked connection.
pub type Session = Box<dyn FnOnce(Hijacked) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Answers `req` by handing its connection to `session`: `101` with `Upgrade: tcp`
/// when the client asked for an upgrade, else `200` with the output as the body.
pub fn respond(req: &mut ApiRequest, tty: bool, session: Session) -> Reply {
    let content_type = if tty { RAW_STREAM } else { MULTIPLEXED_STREAM };
    match req.take_upgrade() {
        Some(on_upgrade) => {
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => session(Hijacked::from_upgraded(upgraded)).await,
                    Err(e) => tracing::debug!(error = %e, "the connection upgrade failed"),
                }
            });
            Reply::empty(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "Upgrade")
                .header("upgrade", "tcp")
                .header("content-type", content_type)
        }
        None => {
            // No upgrade: the session's writes become the body; its reads never end.
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let (tx, reply) = Reply::channel(content_type);
            tokio::spawn(forward(theirs, tx));
            tokio::spawn(session(Hijacked {
                conn: Box::new(ours),
                hangup: None,
            }));
            reply
        }
    }
}

/// Copies what the session writes into a streamed body until either side ends.
async fn forward(mut from: tokio::io::DuplexStream, to: tokio::sync::mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads Docker's detach keys (`ctrl-p,ctrl-q`): comma-separated single characters or
/// `ctrl-<a-z @ [ \ ] ^ _>`; empty means the default.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, ApiError> {
    if spec.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let bad = |key: &str| {
        ApiError::BadRequest(format!(
            "Invalid detach keys ({spec}) provided: unknown character '{key}'"
        ))
    };
    spec.split(',')
        .map(|key| {
            if key.len() == 1 {
                return Ok(key.as_bytes()[0]);
            }
            let lower = key.to_ascii_lowercase();
            let Some(c) = lower.strip_prefix("ctrl-") else {
                return Err(bad(key));
            };
            match c.as_bytes() {
                [b @ b'a'..=b'z'] => Ok(b - b'a' + 1),
                [b'@'] => Ok(0),
                [b @ (b'[' | b'\\' | b']' | b'^' | b'_')] => Ok(b - b'[' + 27),
                _ => Err(bad(key)),
            }
        })
        .collect()
}

/// Finds the detach keys in a stream of input, passing every other byte through (a
/// partial match that breaks off is passed through too).
#[derive(Debug)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    /// Appends what passes to `out`; true when the keys were seen (the rest of `input`
    /// is dropped, as the session ends).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b != self.keys[self.matched] && self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The output ended (the process exited, the container stopped) or the client
    /// went away.
    Done,
    /// The client typed the detach keys.
    Detached,
}

/// Copies between the client and the process until the output ends or the client
/// detaches. Stdin ending (the client half-closed) closes the process's stdin, or
/// detaches it for an attach, and the output goes on.
pub async fn pump(client: Hijacked, io: ProcessIo, detach_keys: Vec<u8>) -> End {
    pump_then(client, io, detach_keys, std::future::ready(())).await
}

/// [`pump`], with `before_close` awaited between the output's end and the closing of
/// the connection (an exec's exit code is recorded by then, for the client's inspect).
pub async fn pump_then(
    client: Hijacked,
    io: ProcessIo,
    detach_keys: Vec<u8>,
    before_close: impl Future<Output = ()>,
) -> End {
    let (mut rd, mut wr) = tokio::io::split(client.conn);
    let hangup = client.hangup;
    let ProcessIo {
        stdin,
        stdout,
        stderr,
        tty,
    } = io;
    let has_output = stdout.is_some() || stderr.is_some();
    let output = async {
        let copied = copy_output(&mut wr, stdout, stderr, tty).await;
        before_close.await;
        let _ = wr.shutdown().await;
        copied
    };
    let input = copy_input(&mut rd, stdin, detach_keys);
    tokio::pin!(output, input);
    tokio::select! {
        _ = &mut output => End::Done,
        end = &mut input => {
            if end == End::Detached {
                return End::Detached;
            }
            // The client half-closed (its stdin ended) or went away: the output goes
            // on until it ends or the client has hung up entirely.
            if has_output {
                tokio::select! {
                    _ = output => {}
                    () = hung_up(hangup.as_ref()) => {}
                }
            }
            End::Done
        }
    }
}

/// Resolves once the client closed its socket entirely (not just its writing side):
/// then the peer's end is gone and poll reports POLLHUP.
async fn hung_up(fd: Option<&OwnedFd>) {
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        if poll(&mut fds, PollTimeout::ZERO).is_ok()
            && fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
        {
            return;
        }
    }
}

/// A socket whose first bytes were already read (by the HTTP parser, past the
/// request): those are served first.
struct Prefixed {
    prefix: Bytes,
    inner: UnixStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Client → stdin, watching for the detach keys. Without stdin the client's bytes are
/// read and dropped, so its going away is noticed.
async fn copy_input<R, W>(rd: &mut R, stdin: Option<W>, keys: Vec<u8>) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let Some(mut stdin) = stdin else {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return End::Done,
                Ok(_) => {}
            }
        }
    };
    let mut scanner = DetachScanner::new(keys);
    let mut pass = Vec::with_capacity(buf.len());
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pass.clear();
        let detached = scanner.feed(&buf[..n], &mut pass);
        if !pass.is_empty() {
            if let Err(e) = stdin.write_all(&pass).await {
                tracing::debug!(error = %e, "the process's stdin is closed");
                break;
            }
            let _ = stdin.flush().await;
        }
        if detached {
            return End::Detached;
        }
    }
    let _ = stdin.shutdown().await;
    End::Done
}

/// The process's output → client: raw with a TTY, stdcopy frames without.
async fn copy_output<W, R>(
    wr: &mut W,
    stdout: Option<R>,
    stderr: Option<R>,
    tty: bool,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let mut out = stdout;
    let mut err = stderr;
    let mut out_buf = vec![0u8; 32 * 1024];
    let mut err_buf = vec![0u8; 32 * 1024];
    while out.is_some() || err.is_some() {
        let (stream, n) = tokio::select! {
            r = read_some(&mut out, &mut out_buf) => (1u8, r.unwrap_or(0)),
            r = read_some(&mut err, &mut err_buf) => (2u8, r.unwrap_or(0)),
        };
        if n == 0 {
            if stream == 1 {
                out = None;
            } else {
                err = None;
            }
            continue;
        }
        let data = if stream == 1 {
            &out_buf[..n]
        } else {
            &err_buf[..n]
        };
        if tty {
            wr.write_all(data).await?;
        } else {
            wr.write_all(&frame_header(stream, n)).await?;
            wr.write_all(data).await?;
        }
        wr.flush().await?;
    }
    Ok(())
}

/// Reads from `r`, or waits forever when there is none (so `select!` skips it).
pub(super) async fn read_some<R: AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The stdcopy header of a chunk of `len` bytes on `stream` (1 stdout, 2 stderr).
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, len[0], len[1], len[2], len[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker_reads_them() {
        assert_eq!(parse_detach_keys("").ok(), Some(vec![16, 17]));
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").ok(), Some(vec![16, 17]));
        assert_eq!(parse_detach_keys("ctrl-A,x").ok(), Some(vec![1, b'x']));
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").ok(),
            Some(vec![0, 27, 28, 29, 30, 31])
        );
        for bad in ["ctrl-1", "ctrl-", "ab", "ctrl-p,,ctrl-q"] {
            let err = parse_detach_keys(bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|m| m.contains("Invalid detach keys")),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn the_scanner_passes_everything_but_the_keys() {
        let mut s = DetachScanner::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(!s.feed(b"ab\x10c", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        // Split across reads.
        assert!(!s.feed(b"x\x10", &mut out));
        assert_eq!(out, b"x");
        assert!(s.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"x");
        // A repeated first key restarts the match.
        let mut s = DetachScanner::new(vec![16, 17]);
        out.clear();
        assert!(s.feed(b"\x10\x10\x11", &mut out));
        assert_eq!(out, b"\x10");
    }

    #[test]
    fn frames_carry_stream_and_big_endian_length() {
        assert_eq!(frame_header(1, 5), [1, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(frame_header(2, 0x0102_0304), [2, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn output_is_framed_without_a_tty_and_raw_with_one() {
        let mut wire = Vec::new();
        let out: Option<&[u8]> = Some(b"hi\n");
        let err: Option<&[u8]> = Some(b"oops");
        copy_output(&mut wire, out, err, false).await.ok();
        // Both frames are there, in either order.
        let mut frames = Vec::new();
        let mut rest = &wire[..];
        while rest.len() >= 8 {
            let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            frames.push((rest[0], rest[8..8 + len].to_vec()));
            rest = &rest[8 + len..];
        }
        frames.sort();
        assert_eq!(frames, vec![(1, b"hi\n".to_vec()), (2, b"oops".to_vec())]);

        let mut wire = Vec::new();
        let out: Option<&[u8]> = Some(b"raw");
        copy_output(&mut wire, out, None, true).await.ok();
        assert_eq!(wire, b"raw");
    }

    #[tokio::test]
    async fn input_reaches_stdin_until_the_detach_keys() {
        let mut client: &[u8] = b"echo hi\n\x10\x11after";
        let mut stdin = Vec::new();
        let end = copy_input(&mut client, Some(&mut stdin), DEFAULT_DETACH_KEYS.to_vec()).await;
        assert_eq!(end, End::Detached);
        assert_eq!(stdin, b"echo hi\n");

        let mut client: &[u8] = b"all of it";
        let mut stdin = Vec::new();
        let end = copy_input(&mut client, Some(&mut stdin), DEFAULT_DETACH_KEYS.to_vec()).await;
        assert_eq!(end, End::Done);
        assert_eq!(stdin, b"all of it");
    }
}
