//! `POST /images/create?fromSrc=-&repo=…&tag=…`: a root filesystem tarball in the
//! request body becomes a one-layer image; `changes` (`CMD`, `ENTRYPOINT`, `ENV`,
//! `WORKDIR`, `USER`, `LABEL`, `HEALTHCHECK`, `VOLUME`) set its runtime defaults.

use std::sync::Arc;

use berth_image::config::ContainerConfig;
use berth_image::Platform;
use serde_json::json;

use super::super::{ApiError, ApiRequest, Reply};
use super::stream::{spool_body, Messages};
use crate::Daemon;

pub async fn handle(
    daemon: &Arc<Daemon>,
    mut req: ApiRequest,
    src: &str,
) -> Result<Reply, ApiError> {
    if src != "-" {
        return Err(ApiError::BadRequest(format!(
            "importing from {src:?} is not supported: berth is offline-first; send the tarball in the request body (fromSrc=-)"
        )));
    }
    let repo = req.query("repo").unwrap_or("").to_string();
    if repo.is_empty() {
        return Err(ApiError::BadRequest(
            "import needs a repository name (repo=…) for the new image".into(),
        ));
    }
    let name = super::pull::reference(&repo, req.query("tag"))?.to_string();
    let mut config = ContainerConfig::default();
    for (k, v) in &req.query {
        if k == "changes" {
            apply_change(&mut config, v)?;
        }
    }
    let platform = match req.query("platform").filter(|p| !p.is_empty()) {
        Some(p) => p
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("invalid platform {p:?}: {e}")))?,
        None => Platform::default(),
    };
    let tmp = spool_body(&mut req, &daemon.engine.images.uploads).await?;
    let d = daemon.clone();
    let rec = tokio::spawn(async move {
        let _writing = d.engine.images.gc_lock.read().await;
        let old = d.engine.images.store.get(&name).ok().flatten();
        let d2 = d.clone();
        let rec = tokio::task::spawn_blocking(move || {
            let i = &d2.engine.images;
            berth_image::import::import(
                &i.content,
                &i.snapshots,
                &i.store,
                tmp.path(),
                &name,
                &platform,
                Some(config),
            )
        })
        .await
        .map_err(|e| ApiError::Internal(format!("import task: {e}")))?
        .map_err(|e| ApiError::BadRequest(format!("import: {e}")))?;
        if old
            .as_ref()
            .is_some_and(|o| o.config_digest != rec.config_digest)
        {
            if let Err(e) = d.engine.images.keep_dangling(old) {
                tracing::warn!(error = %e, "cannot keep the replaced image as dangling");
            }
        }
        Ok::<_, ApiError>(rec)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("import task: {e}")))??;
    let id = rec.config_digest.to_string();
    daemon.engine.events_log.image("import", &id, Some(&id));
    let (msgs, reply) = Messages::new();
    tokio::spawn(async move {
        msgs.send(json!({ "status": rec.config_digest.to_string() }))
            .await;
    });
    Ok(reply)
}

/// Applies one Dockerfile-like change line.
fn apply_change(c: &mut ContainerConfig, line: &str) -> Result<(), ApiError> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let words = || -> Vec<String> {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => v,
            Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
        }
    };
    let pair = || -> Result<(String, String), ApiError> {
        rest.split_once('=')
            .or_else(|| rest.split_once(' '))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .ok_or_else(|| ApiError::BadRequest(format!("{word} needs key=value: {line:?}")))
    };
    match word.to_ascii_uppercase().as_str() {
        "CMD" => c.cmd = Some(words()),
        "ENTRYPOINT" => c.entrypoint = Some(words()),
        "WORKDIR" => c.working_dir = Some(rest.to_string()),
        "USER" => c.user = Some(rest.to_string()),
        "ENV" => {
            let (k, v) = pair()?;
            c.env.get_or_insert_with(Vec::new).push(format!("{k}={v}"));
        }
        "LABEL" => {
            let (k, v) = pair()?;
            c.labels.get_or_insert_with(Default::default).insert(k, v);
        }
        "HEALTHCHECK" => c.healthcheck = Some(healthcheck(rest)?),
        // `VOLUME ["/a", "/b"]` or `VOLUME /a /b`.
        "VOLUME" => {
            let paths = serde_json::from_str::<Vec<String>>(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
            if paths.is_empty() {
                return Err(ApiError::BadRequest(format!("VOLUME needs a path: {line:?}")));
            }
            let volumes = c.volumes.get_or_insert_with(Default::default);
            for p in paths {
                volumes.insert(p, json!({}));
            }
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "unsupported change {line:?}: berth import takes CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, HEALTHCHECK and VOLUME"
            )))
        }
    }
    Ok(())
}

/// `HEALTHCHECK [--interval=… --timeout=… --start-period=… --start-interval=…
/// --retries=N] CMD command` or `HEALTHCHECK NONE`, as the image config's
/// `Healthcheck` (durations in nanoseconds).
fn healthcheck(rest: &str) -> Result<serde_json::Value, ApiError> {
    let bad = |why: String| ApiError::BadRequest(format!("HEALTHCHECK {rest:?}: {why}"));
    let mut check = serde_json::Map::new();
    let mut rest = rest.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let (flag, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (name, value) = flag
            .split_once('=')
            .ok_or_else(|| bad(format!("--{flag} needs a value")))?;
        let key = match name {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            other => return Err(bad(format!("unknown flag --{other}"))),
        };
        let v: i64 = if key == "Retries" {
            value
                .parse()
                .map_err(|_| bad(format!("bad --retries {value:?}")))?
        } else {
            humantime::parse_duration(value)
                .map_err(|e| bad(format!("bad --{name} {value:?}: {e}")))?
                .as_nanos() as i64
        };
        check.insert(key.into(), json!(v));
        rest = after.trim_start();
    }
    let (kind, command) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let test = match kind.to_ascii_uppercase().as_str() {
        "NONE" => json!(["NONE"]),
        "CMD" => match serde_json::from_str::<Vec<String>>(command.trim()) {
            Ok(args) => json!(std::iter::once("CMD".to_string())
                .chain(args)
                .collect::<Vec<_>>()),
            Err(_) => json!(["CMD-SHELL", command.trim()]),
        },
        _ => return Err(bad("expected CMD or NONE".into())),
    };
    check.insert("Test".into(), test);
    Ok(serde_json::Value::Object(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_the_runtime_defaults() {
        let mut c = ContainerConfig::default();
        apply_change(&mut c, r#"CMD ["/bin/sh","-c","echo hi"]"#).unwrap();
        apply_change(&mut c, "ENTRYPOINT echo").unwrap();
        apply_change(&mut c, "ENV A=b").unwrap();
        apply_change(&mut c, "WORKDIR /srv").unwrap();
        assert_eq!(c.cmd.as_deref().map(|v| v.len()), Some(3));
        assert_eq!(c.entrypoint.as_ref().map(|e| e[2].as_str()), Some("echo"));
        assert_eq!(c.env.as_deref(), Some(&["A=b".to_string()][..]));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        apply_change(&mut c, r#"VOLUME ["/data"]"#).unwrap();
        apply_change(&mut c, "VOLUME /a /b").unwrap();
        let volumes: Vec<&String> = c.volumes.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(volumes, ["/a", "/b", "/data"]);
        assert!(apply_change(&mut c, "VOLUME").is_err());
        assert!(apply_change(&mut c, "RUN rm -rf /").is_err());
    }

    #[test]
    fn healthcheck_changes_become_the_image_configs() {
        let h = healthcheck("--interval=200ms --retries=2 CMD test -f /x").ok();
        assert_eq!(
            h,
            Some(json!({"Interval": 200_000_000, "Retries": 2,
                        "Test": ["CMD-SHELL", "test -f /x"]}))
        );
        let h = healthcheck(r#"CMD ["true"]"#).ok();
        assert_eq!(h, Some(json!({"Test": ["CMD", "true"]})));
        assert_eq!(healthcheck("NONE").ok(), Some(json!({"Test": ["NONE"]})));
        assert!(healthcheck("--bogus=1 CMD true").is_err());
        assert!(healthcheck("RUN true").is_err());
    }
}
