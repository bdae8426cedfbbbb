//! The streaming server behind CRI's Exec, Attach and PortForward: those RPCs validate
//! the request and answer with a URL on this server holding a single-use token
//! ([`tokens`]); the client (kubelet, crictl) then connects there and upgrades to SPDY/3.1
//! ([`spdy`]) or WebSocket ([`websocket`]) and speaks Kubernetes' remotecommand
//! ([`remotecommand`]: [`exec`], [`attach`]) or port-forward ([`portforward`]) protocol.
//!
//! Exec and attach go through the engine's process-I/O API; port-forward dials inside
//! the pod's network namespace. One HTTP/1.1 listener ([`server`]), plain TCP or, when
//! configured, TLS ([`tls`]: given files or a self-signed certificate made at start).

pub(crate) mod attach;
mod channel;
pub(crate) mod exec;
pub(crate) mod portforward;
mod remotecommand;
mod server;
mod spdy;
mod spdy_frame;
mod tls;
mod tokens;
mod websocket;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_cri::v1 as cri;
pub use tls::{StreamingTls, TlsError};

use crate::CriError;

/// Where the streaming server listens and how long an idle connection lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingConfig {
    pub address: IpAddr,
    /// 0: a free port chosen at start.
    pub port: u16,
    /// A connection with no traffic for this long is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// TLS (`https://` URLs); `None`: plain HTTP.
    pub tls: Option<StreamingTls>,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            // containerd's stream_idle_timeout default.
            idle_timeout: Some(Duration::from_secs(4 * 3600)),
            tls: None,
        }
    }
}

/// A validated request waiting for its client to connect.
#[derive(Debug, Clone)]
pub(crate) enum StreamRequest {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
    PortForward {
        sandbox_id: String,
        /// The pod's network namespace; `None` for a host-network pod.
        netns: Option<PathBuf>,
    },
}

impl StreamRequest {
    fn path(&self) -> &'static str {
        match self {
            StreamRequest::Exec(_) => "exec",
            StreamRequest::Attach(_) => "attach",
            StreamRequest::PortForward { .. } => "portforward",
        }
    }
}

/// The bound listener, the tokens handed out, and the URL base they go under.
pub(crate) struct StreamServer {
    base: String,
    listener: Mutex<Option<TcpListener>>,
    tokens: tokens::Tokens<StreamRequest>,
    idle: Option<Duration>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl StreamServer {
    /// Binds the listener now, so the port is known (and taken) before any URL is given.
    pub(crate) fn bind(config: &StreamingConfig) -> Result<StreamServer, CriError> {
        let addr = SocketAddr::new(config.address, config.port);
        let listener = TcpListener::bind(addr).map_err(|e| {
            CriError::Internal(format!("binding the streaming server on {addr}: {e}"))
        })?;
        let mut local = listener
            .local_addr()
            .map_err(|e| CriError::Internal(format!("streaming server address on {addr}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| CriError::Internal(format!("streaming server socket: {e}")))?;
        if local.ip().is_unspecified() {
            // Bound on every address: hand out loopback, which every client on the node
            // reaches.
            local.set_ip(match local.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        let tls = match &config.tls {
            None => None,
            Some(tls) => {
                let mut names = vec![
                    local.ip().to_string(),
                    "localhost".to_string(),
                    nix::unistd::gethostname()
                        .ok()
                        .and_then(|h| h.into_string().ok())
                        .unwrap_or_else(|| "localhost".to_string()),
                ];
                names.dedup();
                let server = tls::server_config(tls, &names)?;
                Some(tokio_rustls::TlsAcceptor::from(server))
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %local, scheme, "CRI streaming server listening");
        Ok(StreamServer {
            base: format!("{scheme}://{local}"),
            listener: Mutex::new(Some(listener)),
            tokens: tokens::Tokens::new(tokens::TOKEN_TTL),
            idle: config.idle_timeout,
            tls,
        })
    }

    /// The URL a client connects to for `request`.
    pub(crate) fn url(&self, request: StreamRequest) -> Result<String, CriError> {
        let path = request.path();
        let token = self.tokens.insert(request).ok_or_else(|| {
            CriError::Internal("too many streaming requests outstanding; try again".into())
        })?;
        Ok(format!("{}/{path}/{token}", self.base))
    }

    /// The listener, once: the first [`crate::Cri::serve`] takes it.
    pub(crate) fn take_listener(&self) -> Option<TcpListener> {
        self.listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

pub(crate) use server::run;
