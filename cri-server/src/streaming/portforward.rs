//! `PortForward`: TCP to ports inside a pod's network namespace, over SPDY
//! (`portforward.k8s.io`: the client opens a data and an error stream per connection,
//! paired by `requestid`, naming the `port`) or WebSocket (ports in the query; channels
//! 2i and 2i+1 are port i's data and error, each opened by the port number as two
//! little-endian bytes).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::channel::{Out, Sink};
use super::remotecommand::spdy_handshake;
use super::server::{respond, Conn, Upgrade};
use super::spdy::{self, SpdyStream};
use super::{websocket, StreamRequest};
use crate::sandbox::store::SandboxState;
use crate::{Cri, CriError};

const SPDY_PROTOCOLS: [&str; 1] = ["portforward.k8s.io"];
const WS_PROTOCOLS: [&str; 5] = [
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "",
];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn port_forward(
    cri: &Cri,
    req: cri::PortForwardRequest,
) -> Result<cri::PortForwardResponse, CriError> {
    let sandbox = cri.sandbox(&req.pod_sandbox_id)?;
    if sandbox.state != SandboxState::Ready {
        return Err(CriError::FailedPrecondition(format!(
            "pod sandbox {} is not ready",
            sandbox.id
        )));
    }
    if let Some(p) = req.port.iter().find(|p| !(1..=65535).contains(*p)) {
        return Err(CriError::InvalidArgument(format!(
            "port {p} is not a TCP port"
        )));
    }
    let url = cri.streaming().url(StreamRequest::PortForward {
        sandbox_id: sandbox.id,
        netns: sandbox.netns,
    })?;
    Ok(cri::PortForwardResponse { url })
}

pub(crate) async fn serve(sandbox: String, netns: Option<PathBuf>, conn: Conn) -> io::Result<()> {
    let target = Target { sandbox, netns };
    match conn.upgrade {
        Upgrade::Spdy => serve_spdy(target, conn).await,
        Upgrade::WebSocket => serve_websocket(target, conn).await,
    }
}

/// Where connections go.
#[derive(Clone)]
struct Target {
    sandbox: String,
    netns: Option<PathBuf>,
}

async fn serve_spdy(target: Target, mut conn: Conn) -> io::Result<()> {
    if spdy_handshake(&mut conn, &SPDY_PROTOCOLS).await?.is_none() {
        return Ok(());
    }
    let idle = conn.idle;
    let (r, w) = conn.split();
    let (mut incoming, out) = spdy::serve(r, w, idle);
    let mut pending: HashMap<String, (Option<SpdyStream>, Option<SpdyStream>)> = HashMap::new();
    while let Some(stream) = incoming.recv().await {
        let request = stream
            .header("requestid")
            .map(str::to_string)
            // Clients from before request ids: the error stream is opened first, right
            // before its data stream.
            .unwrap_or_else(|| match stream.header("streamtype") {
                Some("error") => (stream.id + 2).to_string(),
                _ => stream.id.to_string(),
            });
        let entry = pending.entry(request.clone()).or_default();
        match stream.header("streamtype") {
            Some("data") => entry.0 = Some(stream),
            Some("error") => entry.1 = Some(stream),
            _ => {
                let _ = out
                    .send(Out::Reset {
                        id: stream.id,
                        status: super::spdy_frame::RST_PROTOCOL_ERROR,
                    })
                    .await;
                continue;
            }
        }
        let ready = matches!(pending.get(&request), Some((Some(_), Some(_))));
        if let (true, Some((Some(data), Some(error)))) =
            (ready, ready.then(|| pending.remove(&request)).flatten())
        {
            let port = data.header("port").and_then(|p| p.parse::<u16>().ok());
            let target = target.clone();
            let conn_out = out.clone();
            tokio::spawn(async move {
                let Some(port) = port.filter(|p| *p != 0) else {
                    let _ = error.sink.write(b"invalid or missing port header").await;
                    error.sink.close().await;
                    data.sink.close().await;
                    return;
                };
                forward(&target, port, data.rx, data.sink, error.sink, conn_out).await;
            });
        }
    }
    let _ = out.send(Out::Shutdown).await;
    Ok(())
}

async fn serve_websocket(target: Target, mut conn: Conn) -> io::Result<()> {
    let ports: Result<Vec<u16>, _> = conn
        .req
        .query
        .iter()
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v.parse::<u16>())
        .collect();
    let ports = match ports {
        Ok(p) if !p.is_empty() && !p.contains(&0) => p,
        _ => {
            return respond(
                &mut conn.stream,
                "400 Bad Request",
                &[],
                "query parameter \"port\" is required and must be a TCP port\n",
            )
            .await
        }
    };
    let Some(ws) = websocket::accept(conn, &WS_PROTOCOLS).await? else {
        return Ok(());
    };
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data = Sink::new(ws.out.clone(), (2 * i) as u32);
        let error = Sink::new(ws.out.clone(), (2 * i + 1) as u32);
        let prefix = port.to_le_bytes();
        data.write(&prefix).await?;
        error.write(&prefix).await?;
        let (tx, rx) = mpsc::channel(32);
        senders.push(Some(tx));
        let target = target.clone();
        let port = *port;
        let conn_out = ws.out.clone();
        tasks.push(tokio::spawn(async move {
            forward(&target, port, rx, data, error, conn_out).await
        }));
    }
    let mut incoming = ws.incoming;
    let demux = tokio::spawn(async move {
        while let Some((channel, data)) = incoming.recv().await {
            let i = usize::from(channel / 2);
            if channel % 2 != 0 {
                continue;
            }
            match (senders.get_mut(i), data) {
                (Some(slot), Some(d)) => {
                    if let Some(tx) = slot {
                        if tx.send(d).await.is_err() {
                            *slot = None;
                        }
                    }
                }
                (Some(slot), None) => *slot = None,
                _ => {}
            }
        }
    });
    for t in tasks {
        let _ = t.await;
    }
    demux.abort();
    let _ = ws.out.send(Out::Shutdown).await;
    Ok(())
}

/// One forwarded connection: until the pod's side closes, the client's side closes, or
/// the client's connection ends; a failure to connect is written to `error`.
async fn forward(
    target: &Target,
    port: u16,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    data: Sink,
    error: Sink,
    conn: mpsc::Sender<Out>,
) {
    let tcp = match connect(target, port).await {
        Ok(tcp) => tcp,
        Err(message) => {
            tracing::debug!(sandbox = %target.sandbox, port, "port-forward: {message}");
            let _ = error.write(message.as_bytes()).await;
            error.close().await;
            data.close().await;
            return;
        }
    };
    let (mut pod_r, mut pod_w) = tcp.into_split();
    let to_pod = tokio::spawn(async move {
        while let Some(d) = from_client.recv().await {
            if pod_w.write_all(&d).await.is_err() {
                return;
            }
        }
        // The client closed its side: so does the pod's.
        let _ = pod_w.shutdown().await;
    });
    let from_pod = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match pod_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if data.write(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        data.close().await;
    };
    tokio::select! {
        () = from_pod => {}
        () = conn.closed() => {}
    }
    to_pod.abort();
    error.close().await;
}

/// Connects to `port` on the pod's loopback: IPv4, then IPv6.
async fn connect(target: &Target, port: u16) -> Result<TcpStream, String> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let fail = |e4: &dyn std::fmt::Display, e6: &dyn std::fmt::Display| {
        format!(
            "failed to connect to localhost:{port} inside namespace of pod {}: IPv4: {e4}; IPv6: {e6}",
            target.sandbox
        )
    };
    let Some(netns) = target.netns.clone() else {
        // A host-network pod: the host's loopback.
        return match TcpStream::connect(v4).await {
            Ok(s) => Ok(s),
            Err(e4) => TcpStream::connect(v6).await.map_err(|e6| fail(&e4, &e6)),
        };
    };
    // setns changes the calling thread: a thread of its own, which ends right after.
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("berth-portfwd".into())
        .spawn(move || {
            let result = (|| {
                let file = std::fs::File::open(&netns)
                    .map_err(|e| format!("opening network namespace {}: {e}", netns.display()))?;
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("entering network namespace {}: {e}", netns.display()))?;
                match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
                    Ok(s) => Ok(s),
                    Err(e4) => std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT)
                        .map_err(|e6| (e4, e6))
                        .map_err(|(e4, e6)| format!("IPv4: {e4}; IPv6: {e6}")),
                }
            })();
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(format!("starting a port-forward thread: {e}"));
    }
    let stream = rx
        .await
        .map_err(|_| "port-forward thread ended without an answer".to_string())?
        .map_err(|e| {
            format!(
                "failed to connect to localhost:{port} inside namespace of pod {}: {e}",
                target.sandbox
            )
        })?;
    stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream))
        .map_err(|e| format!("port-forward socket: {e}"))
}
