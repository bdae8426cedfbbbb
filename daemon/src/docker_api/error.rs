//! Errors of the Docker Engine API, mapped to the wire once: an HTTP status and
//! Docker's `{"message": …}` body, so clients print their usual messages.

use hyper::StatusCode;

/// An error answered to a Docker API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body Docker sends with an error.
    pub fn body(&self) -> String {
        serde_json::json!({ "message": self.to_string() }).to_string()
    }
}

impl From<berth_engine::store::StoreError> for ApiError {
    fn from(err: berth_engine::store::StoreError) -> Self {
        ApiError::Internal(err.to_string())
    }
}

/// Engine errors as dockerd answers them: its status codes and its wording, which the
/// docker CLI and SDKs print (and some match on).
impl From<berth_engine::EngineError> for ApiError {
    fn from(e: berth_engine::EngineError) -> Self {
        use berth_engine::{EngineError, Object, StateConflict};
        match e {
            EngineError::NotFound {
                what: Object::Container,
                reference,
            } => ApiError::NotFound(format!("No such container: {reference}")),
            EngineError::NotFound {
                what: Object::Image,
                reference,
            } => ApiError::NotFound(format!("No such image: {reference}")),
            EngineError::NotFound {
                what: Object::Exec,
                reference,
            } => ApiError::NotFound(format!("No such exec instance: {reference}")),
            EngineError::NotFound {
                what: Object::Volume,
                reference,
            } => ApiError::NotFound(format!("get {reference}: no such volume")),
            EngineError::NotFound {
                what: Object::Network,
                reference,
            } => ApiError::NotFound(format!("network {reference} not found")),
            e @ EngineError::NetworkInUse { .. } => ApiError::Forbidden(e.to_string()),
            e @ EngineError::NetworkNameInUse(_) => ApiError::Conflict(e.to_string()),
            EngineError::Forbidden(m) => ApiError::Forbidden(m),
            EngineError::Conflict(m) => ApiError::Conflict(m),
            EngineError::VolumeInUse { name, containers } => ApiError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                containers.join(", ")
            )),
            EngineError::NameInUse { name, other_id } => ApiError::Conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other_id}\". You have to remove (or rename) that container to be able to reuse that name."
            )),
            EngineError::State { id, conflict } => ApiError::Conflict(match conflict {
                StateConflict::Paused => {
                    "cannot start a paused container, try unpause instead".to_string()
                }
                StateConflict::MarkedForRemoval => {
                    format!("container {id} is marked for removal and cannot be started")
                }
                StateConflict::NotRunning => format!("Container {id} is not running"),
                StateConflict::AlreadyPaused => format!("Container {id} is already paused"),
                StateConflict::NotPaused => format!("Container {id} is not paused"),
                StateConflict::StillActive(what) => format!(
                    "You cannot remove a {what} container {id}. Stop the container before attempting removal or force remove"
                ),
                StateConflict::PausedExec => {
                    format!("Container {id} is paused, unpause the container before exec")
                }
                StateConflict::ExecStarted => format!("Exec command {id} is already running"),
                StateConflict::ExecNotRunning => format!("Exec {id} is not running"),
            }),
            EngineError::Invalid(m) => ApiError::BadRequest(m),
            e @ EngineError::Internal { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

/// Archive errors as dockerd answers `cp`: 404 for a missing path, 400 for a bad
/// target or upload, 403 for a read-only root or volume.
impl From<berth_engine::archive::ArchiveError> for ApiError {
    fn from(e: berth_engine::archive::ArchiveError) -> Self {
        use berth_engine::archive::ArchiveError as A;
        match e {
            A::Engine(e) => e.into(),
            e @ A::NotFound { .. } => ApiError::NotFound(e.to_string()),
            e @ (A::NotDirectory | A::Invalid(_)) => ApiError::BadRequest(e.to_string()),
            e @ A::ReadOnly(_) => ApiError::Forbidden(e.to_string()),
            e @ (A::Io { .. } | A::Internal(_)) => ApiError::Internal(e.to_string()),
        }
    }
}
