//! Serving both CRI services on a unix socket, every connection through the
//! `:authority` rewriter.

use std::future::Future;
use std::path::Path;

use futures_util::stream;
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;

use crate::conn::CriConnection;
use crate::{Cri, CriError};

/// Largest CRI message accepted or sent (kubelet uses 16 MiB).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

impl Cri {
    /// Binds `path` (replacing a stale socket file) with mode 0660.
    pub fn bind(path: &Path) -> Result<UnixListener, CriError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(CriError::io("create socket directory", dir))?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CriError::io("remove stale socket", path)(e)),
        }
        let listener = UnixListener::bind(path).map_err(CriError::io("bind", path))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(CriError::io("chmod socket", path))?;
        Ok(listener)
    }

    /// Serves RuntimeService and ImageService on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), CriError> {
        let incoming = stream::unfold(listener, |listener| async move {
            let next = listener.accept().await.map(|(s, _)| CriConnection::new(s));
            Some((next, listener))
        });
        let streaming = self
            .streaming()
            .take_listener()
            .map(|l| tokio::spawn(crate::streaming::run(l, self.clone())));
        let runtime = RuntimeServiceServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let images = ImageServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let result = tonic::transport::Server::builder()
            .add_service(runtime)
            .add_service(images)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| CriError::Internal(format!("CRI server: {e}")));
        if let Some(task) = streaming {
            task.abort();
        }
        result
    }
}
