//! A Docker Engine API client over berthd's unix socket.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// The API version this client speaks.
pub const API_VERSION: &str = "1.41";

/// Where berthd's Docker API listens unless told otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/berth/docker.sock";

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unsupported host {0:?}: berth speaks to unix:// sockets only")]
    UnsupportedHost(String),
    #[error("Cannot connect to the berth daemon at unix://{path}. Is berthd running? ({source})")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the berth daemon: {0}")]
    Http(#[from] hyper::Error),
    #[error("building a request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The daemon answered with an error; `message` is its `{"message"}`.
    #[error("Error response from daemon: {message}")]
    Daemon { status: StatusCode, message: String },
    #[error("the daemon's answer is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// One connection per request, as short-lived CLI commands need.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for `host` (`unix:///path` or a bare path).
    pub fn new(host: &str) -> Result<Client, ClientError> {
        let socket = match host.strip_prefix("unix://") {
            Some(path) => PathBuf::from(path),
            None if host.starts_with('/') => PathBuf::from(host),
            None => return Err(ClientError::UnsupportedHost(host.to_string())),
        };
        Ok(Client { socket })
    }

    /// Sends one request and returns status and the whole body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn = tokio::spawn(conn);
        let uri = format!("/v{API_VERSION}{path}");
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "berth");
        let payload = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let response = sender
            .send_request(builder.body(Full::new(payload))?)
            .await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        drop(sender);
        let _ = conn.await;
        Ok((status, bytes))
    }

    /// Sends one request with a raw body and returns the response to read as a
    /// stream (logs that follow, image loads); an error status becomes
    /// `ClientError::Daemon`.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<hyper::body::Incoming, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(format!("/v{API_VERSION}{path}"))
            .header("host", "berth")
            .header("content-type", content_type)
            .body(Full::new(body))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.into_body().collect().await?.to_bytes();
            check(status, &bytes)?;
            return Err(ClientError::Daemon {
                status,
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(response.into_body())
    }

    /// Sends a request asking for the connection (`Upgrade: tcp`, as the docker CLI
    /// does for attach and exec start) and returns it once the daemon switched
    /// protocols; an error status becomes `ClientError::Daemon`.
    pub async fn hijack(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn.with_upgrades());
        let payload = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/v{API_VERSION}{path}"))
            .header("host", "berth")
            .header("content-type", "application/json")
            .header("connection", "Upgrade")
            .header("upgrade", "tcp")
            .body(Full::new(payload))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let bytes = response.into_body().collect().await?.to_bytes();
            check(status, &bytes)?;
            return Err(ClientError::Daemon {
                status,
                message: format!("the daemon answered {status} instead of switching protocols"),
            });
        }
        Ok(TokioIo::new(hyper::upgrade::on(response).await?))
    }

    /// Sends `body` as JSON; the answer's bytes, or the daemon's error. `304 Not
    /// Modified` (already started, already stopped) is success, as docker treats it.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes, ClientError> {
        let (status, bytes) = self.request(method, path, body).await?;
        if status != StatusCode::NOT_MODIFIED {
            check(status, &bytes)?;
        }
        Ok(bytes)
    }

    /// POSTs `body` and parses the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let bytes = self.call(Method::POST, path, body).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// GETs `path` and parses the JSON answer; an error status becomes `ClientError::Daemon`.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let (status, body) = self.request(Method::GET, path, None).await?;
        check(status, &body)?;
        Ok(serde_json::from_slice(&body)?)
    }
}

/// Turns an error status into the daemon's message, as docker prints it.
fn check(status: StatusCode, body: &[u8]) -> Result<(), ClientError> {
    if status.is_success() {
        return Ok(());
    }
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    Err(ClientError::Daemon { status, message })
}
