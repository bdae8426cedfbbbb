//! A hijacked attach or exec connection on this terminal: stdin to the process, its
//! output to stdout/stderr (raw with a TTY, stdcopy frames without), the terminal in
//! raw mode meanwhile, the TTY's size kept in step on SIGWINCH, and signals proxied to
//! the container.

use std::io::{Read, Write};

use anyhow::Context;
use hyper::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::terminal::{self, RawMode};

/// Docker's default detach keys: Ctrl-P Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The output ended (the process exited).
    Done,
    /// The user typed the detach keys.
    Detached,
}

/// What to stream.
pub struct Streams {
    /// Send this terminal's stdin.
    pub stdin: bool,
    pub tty: bool,
    /// The detach keys, to watch for in raw mode (the daemon watches too).
    pub detach_keys: Vec<u8>,
}

/// Reads docker's detach key syntax (`ctrl-p,ctrl-q`, `ctrl-a,x`).
pub fn parse_detach_keys(spec: &str) -> anyhow::Result<Vec<u8>> {
    let spec = if spec.is_empty() {
        DEFAULT_DETACH_KEYS
    } else {
        spec
    };
    spec.split(',')
        .map(|key| {
            if key.len() == 1 {
                return Ok(key.as_bytes()[0]);
            }
            let lower = key.to_ascii_lowercase();
            match lower.strip_prefix("ctrl-").map(str::as_bytes) {
                Some([b @ b'a'..=b'z']) => Ok(b - b'a' + 1),
                Some([b'@']) => Ok(0),
                Some([b @ (b'[' | b'\\' | b']' | b'^' | b'_')]) => Ok(b - b'[' + 27),
                _ => anyhow::bail!("invalid detach keys ({spec}): unknown character '{key}'"),
            }
        })
        .collect()
}

/// Copies between this terminal and `conn` until the output ends or the user
/// detaches. Stdin's end is passed on as a half-close; the output goes on after it.
pub async fn stream<C>(conn: C, streams: Streams) -> anyhow::Result<End>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut raw = if streams.stdin && streams.tty {
        Some(RawMode::enable().context("setting the terminal to raw mode")?)
    } else {
        None
    };
    let (mut rd, mut wr) = tokio::io::split(conn);
    let tty = streams.tty;
    let output = async move {
        if tty {
            copy_raw(&mut rd).await
        } else {
            demux(&mut rd).await
        }
    };
    let input = async move {
        if !streams.stdin {
            return std::future::pending::<End>().await;
        }
        let keys = if streams.tty {
            streams.detach_keys
        } else {
            Vec::new()
        };
        let end = copy_stdin(&mut wr, &keys).await;
        let _ = wr.shutdown().await;
        end
    };
    tokio::pin!(output, input);
    let end = tokio::select! {
        r = &mut output => { r?; End::Done }
        end = &mut input => match end {
            End::Detached => End::Detached,
            End::Done => { output.await?; End::Done }
        },
    };
    if let Some(raw) = raw.as_mut() {
        raw.restore();
    }
    Ok(end)
}

/// Stdin → connection. Stdin is read on a thread of its own (a blocked read must not
/// keep the process from exiting); the detach keys end the copy.
async fn copy_stdin<W: AsyncWrite + Unpin>(wr: &mut W, keys: &[u8]) -> End {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut matched = 0usize;
    while let Some(chunk) = rx.recv().await {
        let mut pass = Vec::with_capacity(chunk.len());
        for &b in &chunk {
            if keys.is_empty() {
                pass.push(b);
                continue;
            }
            if b != keys[matched] && matched > 0 {
                pass.extend_from_slice(&keys[..matched]);
                matched = 0;
            }
            if b == keys[matched] {
                matched += 1;
                if matched == keys.len() {
                    let _ = wr.write_all(&pass).await;
                    return End::Detached;
                }
            } else {
                pass.push(b);
            }
        }
        if wr.write_all(&pass).await.is_err() || wr.flush().await.is_err() {
            break;
        }
    }
    End::Done
}

/// A TTY's output, as it comes.
async fn copy_raw<R: AsyncRead + Unpin>(rd: &mut R) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = std::io::stdout();
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            // The daemon closing a detached session abruptly is an end, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e).context("reading the container's output"),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

/// stdcopy frames: stream 1 to stdout, 2 to stderr.
async fn demux<R: AsyncRead + Unpin>(rd: &mut R) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    loop {
        match rd.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e).context("reading the container's output"),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        rd.read_exact(&mut buf)
            .await
            .context("reading the container's output")?;
        if header[0] == 2 {
            let mut err = std::io::stderr();
            err.write_all(&buf)?;
            err.flush()?;
        } else {
            let mut out = std::io::stdout();
            out.write_all(&buf)?;
            out.flush()?;
        }
    }
}

/// Keeps a TTY's size in step with this terminal: once now, then on each SIGWINCH.
/// `path` is `/containers/{id}/resize` or `/exec/{id}/resize`.
pub fn monitor_size(client: &Client, path: String) -> Option<JoinHandle<()>> {
    if !terminal::stdout_is_terminal() {
        return None;
    }
    let client = client.clone();
    Some(tokio::spawn(async move {
        resize(&client, &path).await;
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            resize(&client, &path).await;
        }
    }))
}

async fn resize(client: &Client, path: &str) {
    if let Some((h, w)) = terminal::size() {
        let _ = client
            .call(Method::POST, &format!("{path}?h={h}&w={w}"), None)
            .await;
    }
}

/// Forwards the signals a user sends this process to the container (`--sig-proxy`),
/// as docker does: all but SIGCHLD, SIGPIPE, SIGURG and SIGWINCH; here the ones a
/// terminal or a supervisor sends.
pub fn proxy_signals(client: &Client, container: &str) -> Vec<JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::quit(), "SIGQUIT"),
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ];
    kinds
        .into_iter()
        .filter_map(|(kind, name)| {
            let mut sig = signal(kind).ok()?;
            let client = client.clone();
            let path = format!("/containers/{container}/kill?signal={name}");
            Some(tokio::spawn(async move {
                while sig.recv().await.is_some() {
                    if let Err(e) = client.call(Method::POST, &path, None).await {
                        eprintln!("berth: forwarding {name}: {e}");
                    }
                }
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("").ok(), Some(vec![16, 17]));
        assert_eq!(parse_detach_keys("ctrl-a,x").ok(), Some(vec![1, b'x']));
        assert!(parse_detach_keys("ctrl-1").is_err());
    }

    #[tokio::test]
    async fn frames_are_split_by_stream() {
        // Only checks that a well-formed stream is consumed to its end.
        let mut wire: &[u8] = &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert!(demux(&mut wire).await.is_ok());
        let mut short: &[u8] = &[1, 0, 0, 0, 0, 0, 0, 9, b'x'];
        assert!(demux(&mut short).await.is_err());
    }
}
