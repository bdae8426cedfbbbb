//! The engine's errors: what went wrong, typed, in the engine's own words. Each front
//! door maps them once: the Docker API to Docker's status codes and messages
//! (`daemon/src/docker_api/error.rs`), the CRI to gRPC codes (`cri-server/src/error.rs`).

use std::fmt;

use super::shim::ShimError;
use crate::lookup::LookupError;
use crate::store::StoreError;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a reference did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Container,
    Image,
    /// A process started in a running container.
    Exec,
    Volume,
    Network,
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Object::Container => "container",
            Object::Image => "image",
            Object::Exec => "exec instance",
            Object::Volume => "volume",
            Object::Network => "network",
        })
    }
}

/// Why a container cannot do what was asked in the state it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateConflict {
    /// Start, while paused.
    Paused,
    /// Start, while being removed.
    MarkedForRemoval,
    /// Kill, pause, top or exec, while not running.
    NotRunning,
    AlreadyPaused,
    NotPaused,
    /// Remove without force, while running (or paused, or restarting).
    StillActive(&'static str),
    /// Exec, while paused.
    PausedExec,
    /// Start of an exec (the id) that was started before.
    ExecStarted,
    /// Resize or kill of an exec (the id) that is not running.
    ExecNotRunning,
}

impl fmt::Display for StateConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateConflict::Paused => f.write_str("is paused"),
            StateConflict::MarkedForRemoval => f.write_str("is being removed"),
            StateConflict::NotRunning => f.write_str("is not running"),
            StateConflict::AlreadyPaused => f.write_str("is already paused"),
            StateConflict::NotPaused => f.write_str("is not paused"),
            StateConflict::StillActive(what) => write!(f, "is {what}; stop it first"),
            StateConflict::PausedExec => f.write_str("is paused; unpause it before exec"),
            StateConflict::ExecStarted => f.write_str("has an exec that was already started"),
            StateConflict::ExecNotRunning => f.write_str("has an exec that is not running"),
        }
    }
}

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No container or image answers to `reference`.
    #[error("no such {what}: {reference}")]
    NotFound { what: Object, reference: String },
    /// Another container holds the name.
    #[error("the container name {name:?} is already in use by container {other_id}")]
    NameInUse { name: String, other_id: String },
    /// The request cannot be done in the container's current state.
    #[error("container {id} {conflict}")]
    State { id: String, conflict: StateConflict },
    /// Removal of a volume that containers (their ids) use.
    #[error("volume {name} is in use by containers {containers:?}")]
    VolumeInUse {
        name: String,
        containers: Vec<String>,
    },
    /// Removal of a network a container has an endpoint on.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    NetworkInUse { name: String, id: String },
    /// Another network has the name.
    #[error("network with name {0} already exists")]
    NetworkNameInUse(String),
    /// The request is well-formed but not allowed (a predefined network, an address
    /// space taken); the message names why.
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong; the message names what.
    #[error("{0}")]
    Invalid(String),
    /// The request is right but another object's state stands against it (a
    /// `container:` network target that does not run); the message names it.
    #[error("{0}")]
    Conflict(String),
    /// Something underneath failed while the engine was doing `context`.
    #[error("{context}: {source}")]
    Internal { context: String, source: Source },
}

impl EngineError {
    pub fn container_not_found(reference: impl Into<String>) -> EngineError {
        EngineError::NotFound {
            what: Object::Container,
            reference: reference.into(),
        }
    }

    pub fn image_not_found(reference: impl Into<String>) -> EngineError {
        EngineError::NotFound {
            what: Object::Image,
            reference: reference.into(),
        }
    }

    pub fn state(id: impl Into<String>, conflict: StateConflict) -> EngineError {
        EngineError::State {
            id: id.into(),
            conflict,
        }
    }

    /// `map_err(EngineError::internal("writing config.json"))`.
    pub fn internal<E>(context: impl Into<String>) -> impl FnOnce(E) -> EngineError
    where
        E: Into<Source>,
    {
        let context = context.into();
        move |source| EngineError::Internal {
            context,
            source: source.into(),
        }
    }

    /// An internal failure with no error value underneath (a broken invariant).
    pub fn broken(context: impl Into<String>, what: impl Into<String>) -> EngineError {
        EngineError::Internal {
            context: context.into(),
            source: what.into().into(),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameInUse { name, other_id, .. } => {
                EngineError::NameInUse { name, other_id }
            }
            other => EngineError::internal("the metadata store")(other),
        }
    }
}

impl From<ShimError> for EngineError {
    fn from(e: ShimError) -> Self {
        EngineError::internal("the container's shim")(e)
    }
}

impl From<LookupError> for EngineError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NotFound { reference, .. } => EngineError::container_not_found(reference),
            LookupError::Store(e) => e.into(),
            other => EngineError::Invalid(other.to_string()),
        }
    }
}
