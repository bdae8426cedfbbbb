//! CRI errors and their one mapping to gRPC status codes.

use std::path::PathBuf;

use berth_engine::{EngineError, Object};

/// Everything a CRI call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unimplemented(String),
    /// A deadline the request set passed (ExecSync's timeout): kubelet reads the code.
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("sandbox database {path}: {source}")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pod network: {0}")]
    Network(#[from] berth_cni::CniError),
    #[error("pod namespace: {0}")]
    Netns(#[from] berth_cni::NetnsError),
    #[error("pulling image: {0}")]
    Pull(#[from] berth_image::PullError),
    #[error("registry: {0}")]
    Registry(#[from] berth_image::RegistryError),
    #[error("image store: {0}")]
    ImageStore(#[from] berth_image::store::StoreError),
    #[error("CRI streaming server TLS: {0}")]
    StreamingTls(#[from] crate::streaming::TlsError),
    #[error("{0}")]
    Internal(String),
}

impl CriError {
    pub(crate) fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CriError {
        let path = path.into();
        move |source| CriError::Io { step, path, source }
    }
}

impl From<CriError> for tonic::Status {
    fn from(e: CriError) -> tonic::Status {
        let msg = e.to_string();
        match e {
            CriError::InvalidArgument(_) => tonic::Status::invalid_argument(msg),
            CriError::NotFound { .. } => tonic::Status::not_found(msg),
            CriError::AlreadyExists(_) => tonic::Status::already_exists(msg),
            CriError::FailedPrecondition(_) => tonic::Status::failed_precondition(msg),
            CriError::Unimplemented(_) => tonic::Status::unimplemented(msg),
            CriError::DeadlineExceeded(_) => tonic::Status::deadline_exceeded(msg),
            CriError::Pull(berth_image::PullError::Reference(_)) => {
                tonic::Status::invalid_argument(msg)
            }
            _ => tonic::Status::internal(msg),
        }
    }
}

/// The pod and container a CRI call names, carried by its span (and so by every log
/// line of the call). Calls that make the id (RunPodSandbox, CreateContainer) record it
/// into their span once they have it.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    pod: String,
    container: String,
}

impl Ids {
    pub(crate) const NONE: Ids = Ids {
        pod: String::new(),
        container: String::new(),
    };

    pub(crate) fn pod(id: &str) -> Ids {
        Ids {
            pod: id.to_string(),
            ..Ids::default()
        }
    }

    pub(crate) fn container(id: &str) -> Ids {
        Ids {
            container: id.to_string(),
            ..Ids::default()
        }
    }
}

/// Records `id` as the pod (`"pod"`) or container (`"container"`) of the CRI call being
/// served, for calls that only learn it on the way.
pub(crate) fn record_id(field: &'static str, id: &str) {
    tracing::Span::current().record(field, id);
}

/// Runs one CRI call in a span naming the RPC and the ids it is about; the outcome is
/// logged inside the span and the error mapped to a gRPC status once.
pub(crate) async fn instrument<T, F>(
    rpc: &'static str,
    ids: Ids,
    fut: F,
) -> Result<tonic::Response<T>, tonic::Status>
where
    F: std::future::Future<Output = Result<T, CriError>>,
{
    use tracing::field::Empty;
    use tracing::Instrument;
    let span = tracing::debug_span!("cri", rpc, pod = Empty, container = Empty);
    if !ids.pod.is_empty() {
        span.record("pod", ids.pod.as_str());
    }
    if !ids.container.is_empty() {
        span.record("container", ids.container.as_str());
    }
    let start = std::time::Instant::now();
    async move {
        match fut.await {
            Ok(v) => {
                tracing::debug!(elapsed_us = start.elapsed().as_micros() as u64, "ok");
                crate::metrics::observe_rpc(rpc, tonic::Code::Ok, start.elapsed().as_secs_f64());
                Ok(tonic::Response::new(v))
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed");
                let status: tonic::Status = e.into();
                crate::metrics::observe_rpc(rpc, status.code(), start.elapsed().as_secs_f64());
                Err(status)
            }
        }
    }
    .instrument(span)
    .await
}

/// Engine errors as CRI answers them: the one mapping to gRPC codes' kinds.
impl From<EngineError> for CriError {
    fn from(e: EngineError) -> CriError {
        match e {
            EngineError::NotFound { what, reference } => CriError::NotFound {
                what: match what {
                    Object::Container => "container",
                    Object::Image => "image",
                    Object::Exec => "exec",
                    Object::Volume => "volume",
                    Object::Network => "network",
                },
                id: reference,
            },
            // A concurrent create of the same name won the store's name index.
            e @ (EngineError::NameInUse { .. } | EngineError::NetworkNameInUse(_)) => {
                CriError::AlreadyExists(e.to_string())
            }
            e @ (EngineError::State { .. }
            | EngineError::VolumeInUse { .. }
            | EngineError::NetworkInUse { .. }
            | EngineError::Forbidden(_)
            | EngineError::Conflict(_)) => CriError::FailedPrecondition(e.to_string()),
            EngineError::Invalid(m) => CriError::InvalidArgument(m),
            e @ EngineError::Internal { .. } => CriError::Internal(e.to_string()),
        }
    }
}
