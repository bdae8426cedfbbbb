//! `POST /commit?container=…&repo=…&tag=…`: a container's changes as a new image
//! (`docker commit`), through the builder's commit (the RUN step's layer code).
//! The body's container config may only be empty: its fields are not applied, the
//! `changes` instructions are.

use std::sync::Arc;

use berth_build::executor::commit::{commit, CommitRequest};
use hyper::StatusCode;
use serde_json::{json, Value};

use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Reply, ApiError> {
    let body: Value = req.json().await?;
    match &body {
        Value::Null => {}
        Value::Object(m) if m.values().all(|v| v.is_null() || v == &json!({}) || v == &json!([]) || v == &json!("") || v == &json!(false) || v == &json!(0)) => {}
        _ => {
            return Err(ApiError::BadRequest(
                "a container config in the commit body is not applied by berth: use changes (--change) instead".into(),
            ))
        }
    }
    let Some(container) = req.query("container").filter(|c| !c.is_empty()) else {
        return Err(ApiError::BadRequest(
            "commit needs a container (container=…)".into(),
        ));
    };
    let repo = req.query("repo").unwrap_or("");
    let tag = req.query("tag").unwrap_or("");
    let reference = if repo.is_empty() {
        if !tag.is_empty() {
            return Err(ApiError::BadRequest(
                "tag is specified without a repository".into(),
            ));
        }
        None
    } else {
        let r = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        Some(
            berth_engine::normalise_image(&r)
                .ok_or_else(|| ApiError::BadRequest(format!("invalid reference format: {r}")))?,
        )
    };
    let pause = match req.query("pause") {
        None | Some("") => true,
        Some(_) => req.query_bool("pause")?,
    };
    let changes: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.clone())
        .collect();
    let comment = req.query("comment").unwrap_or("").to_string();
    let id = commit(
        &daemon.engine,
        CommitRequest {
            container: container.to_string(),
            reference: reference.clone(),
            comment: comment.clone(),
            author: req.query("author").unwrap_or("").to_string(),
            changes,
            pause,
        },
    )
    .await?;
    // dockerd's event: the container's, with the comment and the new image.
    if let Ok(record) = berth_engine::find(&daemon.engine, container) {
        daemon.engine.events_log.container(
            &record,
            "commit",
            [
                ("comment".to_string(), comment),
                ("imageID".to_string(), id.clone()),
                (
                    "imageRef".to_string(),
                    reference.clone().unwrap_or_default(),
                ),
            ],
        );
    }
    Ok(Reply::json(&json!({ "Id": id })).with_status(StatusCode::CREATED))
}
