//! Container RPCs, run by berth's container engine ([`berth_engine::Engine`]).
//!
//! A CRI container is an engine container like any other (a record, a snapshot, a
//! bundle, a berth-shim), with [`CriMeta`] in its record: the pod it belongs to, its
//! CRI metadata, labels and annotations. Its spec joins the pod's pinned namespaces
//! and binds the pod's hostname, resolv.conf and hosts files (`create.rs`); its log is
//! the CRI log path kubelet asked for, written by the shim.
//!
//! One file per RPC or small group: `create.rs`, `lifecycle.rs` (start, stop, remove),
//! `status.rs` (status, list), `exec.rs`, `logs.rs` (reopen), `stats.rs`, `update.rs`.
//! Without an engine (a CRI server started without berthd's) the RPCs that need one
//! answer `Unimplemented` saying so.
//!
//! [`CriMeta`]: berth_engine::CriMeta

pub(crate) mod create;
pub(crate) mod exec;
pub(crate) mod lifecycle;
pub(crate) mod logs;
pub(crate) mod pod_spec;
pub(crate) mod stats;
pub(crate) mod status;
pub(crate) mod update;

use std::sync::Arc;

use berth_engine::{self as engine, Engine};

use crate::{Cri, CriError};

impl Cri {
    /// The container engine, for RPC `rpc`; `Unimplemented` without one.
    pub(crate) fn engine(&self, rpc: &str) -> Result<Arc<Engine>, CriError> {
        self.inner.engine.clone().ok_or_else(|| missing(rpc))
    }
}

/// The answer when no engine is wired in.
pub(crate) fn missing(rpc: &str) -> CriError {
    CriError::Unimplemented(format!(
        "{rpc}: containers are run by berthd's container engine, which this CRI server was started without"
    ))
}

/// The record of CRI container `id`; a container made through the Docker API is not
/// one CRI knows.
pub(crate) fn cri_record(engine: &Engine, id: &str) -> Result<engine::ContainerRecord, CriError> {
    let record = engine::get(engine, id).map_err(CriError::from)?;
    if record.cri.is_none() {
        return Err(CriError::NotFound {
            what: "container",
            id: id.to_string(),
        });
    }
    Ok(record)
}

/// Whether a lookup failed because the container is not there.
fn is_missing(e: &CriError) -> bool {
    matches!(e, CriError::NotFound { .. })
}

/// Ids of the containers of one sandbox, for StopPodSandbox/RemovePodSandbox.
pub(crate) fn sandbox_containers(
    engine: &Engine,
    sandbox_id: &str,
) -> Result<Vec<String>, CriError> {
    Ok(status::cri_records(engine)?
        .into_iter()
        .filter(|r| r.cri.as_ref().is_some_and(|c| c.sandbox_id == sandbox_id))
        .map(|r| r.id)
        .collect())
}
