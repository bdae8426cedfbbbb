//! `/containers/…`: container endpoints (create, start, stop, logs, …).

mod archive;
mod attach;
mod attach_ws;
mod create;
mod export;
mod json;
mod logs;
mod resize;
mod stats;
mod top;
mod update;

pub use json::df_entries;
pub use resize::size as terminal_size;

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{self as engine, EngineError, StartOutcome, Status};
use hyper::{Method, StatusCode};
use serde_json::json;

use super::{ApiError, ApiRequest, Reply, Routed};
use crate::Daemon;

/// Answers the container endpoints; hands every other path back.
pub async fn route(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Routed, ApiError> {
    let Some(rest) = req.path.strip_prefix("/containers/") else {
        return Ok(Routed::NotMine(req));
    };
    let rest = rest.to_string();
    let method = req.method.clone();
    let reply = match (&method, rest.as_str()) {
        (&Method::POST, "create") => create::create(daemon, &mut req).await?,
        (&Method::GET, "json") => json::list(daemon, &req)?,
        (&Method::POST, "prune") => prune(daemon, &req).await?,
        _ => {
            let (id, action) = match rest.split_once('/') {
                Some((id, action)) => (id.to_string(), action.to_string()),
                None => (rest.clone(), String::new()),
            };
            tracing::Span::current().record("container", id.as_str());
            match (&method, action.as_str()) {
                (&Method::GET, "json") => json::inspect(daemon, &id)?,
                (&Method::POST, "start") => {
                    let record = engine::find(&daemon.engine, &id)?;
                    match engine::start(&daemon.engine, &record.id).await? {
                        StartOutcome::Started => Reply::empty(StatusCode::NO_CONTENT),
                        StartOutcome::AlreadyRunning => Reply::empty(StatusCode::NOT_MODIFIED),
                    }
                }
                (&Method::POST, "stop") => {
                    let t = req.query_int("t")?.or(req.query_int("timeout")?);
                    if engine::stop(&daemon.engine, &id, t).await? {
                        Reply::empty(StatusCode::NO_CONTENT)
                    } else {
                        Reply::empty(StatusCode::NOT_MODIFIED)
                    }
                }
                (&Method::POST, "restart") => {
                    let t = req.query_int("t")?.or(req.query_int("timeout")?);
                    engine::restart(&daemon.engine, &id, t).await?;
                    Reply::empty(StatusCode::NO_CONTENT)
                }
                (&Method::POST, "kill") => {
                    engine::kill(&daemon.engine, &id, req.query("signal").unwrap_or("")).await?;
                    Reply::empty(StatusCode::NO_CONTENT)
                }
                (&Method::POST, "wait") => wait(daemon, &id, req.query("condition")).await?,
                (&Method::DELETE, "") => {
                    let force = req.query_bool("force")?;
                    // `rm -v`: the anonymous volumes go with the container.
                    if req.query_bool("v")? {
                        engine::remove_with_volumes(&daemon.engine, &id, force).await?;
                    } else {
                        engine::remove(&daemon.engine, &id, force).await?;
                    }
                    Reply::empty(StatusCode::NO_CONTENT)
                }
                (&Method::HEAD, "archive") => archive::head(daemon, &id, &req).await?,
                (&Method::GET, "archive") => archive::get(daemon, &id, &req).await?,
                (&Method::PUT, "archive") => archive::put(daemon, &id, &mut req).await?,
                (&Method::GET, "export") => export::export(daemon, &id).await?,
                (&Method::GET, "changes") => export::changes(daemon, &id).await?,
                (&Method::GET, "logs") => logs::handle(daemon, &id, &req).await?,
                (&Method::GET, "stats") => stats::handle(daemon, &id, &req).await?,
                (&Method::POST, "update") => update::handle(daemon, &id, &mut req).await?,
                (&Method::GET, "top") => top::handle(daemon, &id, req.query("ps_args")).await?,
                (&Method::POST, "rename") => rename(daemon, &id, req.query("name"))?,
                (&Method::POST, "pause") => {
                    engine::pause(&daemon.engine, &id).await?;
                    Reply::empty(StatusCode::NO_CONTENT)
                }
                (&Method::POST, "unpause") => {
                    engine::unpause(&daemon.engine, &id).await?;
                    Reply::empty(StatusCode::NO_CONTENT)
                }
                (&Method::POST, "attach") => attach::handle(daemon, &id, &mut req).await?,
                (&Method::GET, "attach/ws") => attach_ws::handle(daemon, &id, &mut req).await?,
                (&Method::POST, "resize") => resize::handle(daemon, &id, &req).await?,
                (&Method::POST, "exec") => super::exec::create(daemon, &id, &mut req).await?,
                _ => return Ok(Routed::NotMine(req)),
            }
        }
    };
    Ok(Routed::Done(reply))
}

/// `wait`: `not-running` (default), `next-exit` or `removed`. The status line and
/// headers go out at once, the body when the condition is met: docker's CLI waits for
/// the headers before it starts the container.
async fn wait(
    daemon: &Arc<Daemon>,
    reference: &str,
    condition: Option<&str>,
) -> Result<Reply, ApiError> {
    let record = engine::find(&daemon.engine, reference)?;
    let condition = condition.unwrap_or("not-running").to_string();
    if !matches!(
        condition.as_str(),
        "" | "not-running" | "next-exit" | "removed"
    ) {
        return Err(ApiError::BadRequest(format!(
            "invalid condition: {condition:?}"
        )));
    }
    let (tx, reply) = Reply::channel("application/json");
    let daemon = Arc::clone(daemon);
    tokio::spawn(async move {
        let body = match wait_for(&daemon, record, &condition).await {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let _ = tx.send(bytes::Bytes::from(body.to_string() + "\n")).await;
    });
    Ok(reply)
}

async fn wait_for(
    daemon: &Arc<Daemon>,
    record: engine::ContainerRecord,
    condition: &str,
) -> Result<i64, EngineError> {
    let id = record.id.clone();
    let first_finish = record.state.finished_at.clone();
    let mut last_code = record.state.exit_code;
    // Exits as the engine reports them: an auto-remove may delete the record before
    // this loop reads it again, but not the `die` event with its exit code.
    let (_, mut exits) = daemon.engine.events_log.subscribe();
    loop {
        while let Ok(event) = exits.try_recv() {
            if event.actor_id == id && event.action == "die" {
                if let Some(code) = event
                    .attributes
                    .get("exitCode")
                    .and_then(|c| c.parse().ok())
                {
                    last_code = code;
                }
            }
        }
        let current = match engine::get(&daemon.engine, &id) {
            Ok(r) => Some(r),
            Err(EngineError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let done = match (&current, condition) {
            (None, _) => true,
            (Some(_), "removed") => false,
            (Some(r), "next-exit") => {
                !r.state.status.has_task()
                    && r.state.status != Status::Restarting
                    && r.state.finished_at != first_finish
                    && !r.state.finished_at.is_empty()
            }
            (Some(r), _) => !r.state.status.has_task() && r.state.status != Status::Restarting,
        };
        if let Some(r) = current.as_ref().filter(|r| !r.state.finished_at.is_empty()) {
            last_code = r.state.exit_code;
        }
        if done {
            return Ok(last_code);
        }
        let exited = current.as_ref().is_some_and(|r| !r.state.status.has_task());
        if exited {
            // Exited, waiting for the next start or the removal: poll.
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else {
            // Read the record again as soon as the exit is recorded: an auto-remove
            // follows at once, and the exit code must be seen before it.
            engine::wait_exit(&daemon.engine, &id, Some(Duration::from_millis(200))).await?;
        }
    }
}

fn rename(daemon: &Arc<Daemon>, reference: &str, name: Option<&str>) -> Result<Reply, ApiError> {
    let name = name.unwrap_or("").trim_start_matches('/');
    if !berth_engine::lookup::valid_name(name) {
        return Err(ApiError::BadRequest(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let mut record = engine::find(&daemon.engine, reference)?;
    // A create in flight may hold the name before its record is stored.
    let _claim = daemon
        .engine
        .names
        .claim(&daemon.engine.store, name, &record.id)?;
    let old_name = std::mem::replace(&mut record.name, name.to_string());
    daemon
        .engine
        .store
        .put(
            berth_engine::store::Kind::Container,
            &record.id,
            Some(name),
            &record,
        )
        .map_err(EngineError::from)?;
    let old_name = ("oldName".to_string(), format!("/{old_name}"));
    daemon
        .engine
        .events_log
        .container(&record, "rename", [old_name]);
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/prune`: the containers not running (created, exited, dead),
/// filtered by `until` (created before) and `label`/`label!`; `SpaceReclaimed` is the
/// size of their writable layers.
async fn prune(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    use super::images::filters;
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["until", "label", "label!"])?;
    let until = match f.get("until").and_then(|v| v.last()) {
        Some(u) => Some(super::images::prune::until_secs(u)?),
        None => None,
    };
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for r in engine::list(&daemon.engine)? {
        if !matches!(
            r.state.status,
            Status::Exited | Status::Created | Status::Dead
        ) {
            continue;
        }
        let labels = json!(r.labels);
        if !filters::labels_match(&f, &labels) || labels_excluded(&f, &labels) {
            continue;
        }
        let created = humantime::parse_rfc3339_weak(&r.created)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        if until.is_some_and(|u| created > u) {
            continue;
        }
        let size = json::size_rw(&daemon.engine, &r);
        match engine::remove(&daemon.engine, &r.id, false).await {
            Ok(()) => {
                reclaimed += size;
                deleted.push(r.id);
            }
            // Started or removed meanwhile.
            Err(EngineError::State { .. } | EngineError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Reply::json(&json!({
        "ContainersDeleted": if deleted.is_empty() { serde_json::Value::Null } else { json!(deleted) },
        "SpaceReclaimed": reclaimed,
    })))
}

/// The `label!` filter: a container with any of these labels (`key` or `key=value`)
/// is left alone.
fn labels_excluded(f: &super::images::filters::Filters, labels: &serde_json::Value) -> bool {
    f.get("label!").is_some_and(|not| {
        not.iter().any(|w| match w.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v),
            None => labels.get(w).is_some(),
        })
    })
}
