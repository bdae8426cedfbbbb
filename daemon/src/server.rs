//! Serving an HTTP API on a unix socket until shutdown.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::{docker_api, Daemon};

/// Errors binding a socket.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A bound socket that is removed from the filesystem when dropped.
pub struct BoundSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` with mode 0660 (root and its group only). A stale socket left by a
/// crashed daemon is replaced: the caller holds the state lock, so it is ours.
pub fn bind(path: &Path) -> Result<BoundSocket, ServeError> {
    let err = |source| ServeError::Bind {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(BoundSocket {
        listener,
        path: path.to_path_buf(),
    })
}

/// Serves the Docker Engine API on `socket` until `shutdown` resolves.
pub async fn serve_docker_api(
    daemon: Arc<Daemon>,
    socket: BoundSocket,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = socket.listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a Docker API connection failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let daemon = daemon.clone();
                async move { Ok::<_, Infallible>(docker_api::handle(&daemon, req).await) }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(error = %err, "Docker API connection ended with an error");
            }
        });
    }
}
