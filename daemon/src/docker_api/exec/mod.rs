//! `/exec/…` and `POST /containers/{id}/exec`: processes run in a running container
//! through the engine's exec API. What the engine does not keep of an exec (its detach
//! keys, the console size asked at create) is kept here, per exec id.

mod create;
mod inspect;
mod resize;
mod start;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_engine::EngineError;
use hyper::Method;

pub use create::create;

use super::{ApiError, ApiRequest, Routed};
use crate::Daemon;

/// Docker's exec settings the engine has no field for.
#[derive(Debug, Clone, Default)]
pub struct ExecExtras {
    /// As the client gave them (`""`: the default), reported by inspect.
    pub detach_keys: String,
    /// `[height, width]` to give the TTY once the exec starts.
    pub console_size: Option<(u16, u16)>,
}

/// The extras of every exec berthd made, by exec id.
#[derive(Debug, Default)]
pub struct ExecTable(Mutex<HashMap<String, ExecExtras>>);

impl ExecTable {
    pub fn insert(&self, id: &str, extras: ExecExtras) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(id.to_string(), extras);
        }
    }

    pub fn get(&self, id: &str) -> ExecExtras {
        self.0
            .lock()
            .ok()
            .and_then(|map| map.get(id).cloned())
            .unwrap_or_default()
    }

    /// Forgets the execs the engine no longer knows (their container was removed).
    pub fn retain(&self, known: impl Fn(&str) -> bool) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|id, _| known(id));
        }
    }
}

/// Answers `/exec/{id}/start|resize|json`; hands every other path back.
pub async fn route(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Routed, ApiError> {
    let Some(rest) = req.path.strip_prefix("/exec/") else {
        return Ok(Routed::NotMine(req));
    };
    let Some((id, action)) = rest.split_once('/') else {
        return Ok(Routed::NotMine(req));
    };
    let (id, action) = (id.to_string(), action.to_string());
    let method = req.method.clone();
    let reply = match (&method, action.as_str()) {
        (&Method::POST, "start") => start::handle(daemon, &id, &mut req).await?,
        (&Method::POST, "resize") => resize::handle(daemon, &id, &req).await?,
        (&Method::GET, "json") => inspect::handle(daemon, &id)?,
        _ => return Ok(Routed::NotMine(req)),
    };
    Ok(Routed::Done(reply))
}

/// Engine errors about exec `id`, with dockerd's words for an unknown one.
fn exec_error(id: &str, e: EngineError) -> ApiError {
    match e {
        EngineError::NotFound { .. } => ApiError::NotFound(format!("No such exec instance: {id}")),
        e => e.into(),
    }
}
