//! `commit`: a container's filesystem changes (its snapshot's upper directory) as a new
//! layer on its image, the same layer code as a RUN step; the config is the
//! container's (its command, env, user, working directory, labels, ports) with
//! Dockerfile `changes` applied.

use std::sync::Arc;

use berth_engine::{Engine, EngineError, Status};
use berth_image::config::History;

use super::{config, layers};
use crate::dockerfile::expand::expand;
use crate::dockerfile::{instructions, Instruction};

pub struct CommitRequest {
    /// The container, by name or ID.
    pub container: String,
    /// A normalised reference for the image; `None`: untagged.
    pub reference: Option<String>,
    pub comment: String,
    pub author: String,
    /// Dockerfile instructions applied to the config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL).
    pub changes: Vec<String>,
    /// Pause a running container while its changes are read.
    pub pause: bool,
}

fn invalid(m: impl Into<String>) -> EngineError {
    EngineError::Invalid(m.into())
}

/// The config instructions of `changes`, checked before anything is written.
fn parse_changes(changes: &[String]) -> Result<Vec<Instruction>, EngineError> {
    let mut out = Vec::new();
    for c in changes {
        for line in c.lines().filter(|l| !l.trim().is_empty()) {
            let ins = instructions::parse(line.trim(), &[], '\\')
                .map_err(|e| invalid(format!("invalid change {line:?}: {e}")))?;
            match ins {
                Instruction::Cmd(_)
                | Instruction::Entrypoint(_)
                | Instruction::Env(_)
                | Instruction::Expose(_)
                | Instruction::Label(_)
                | Instruction::Onbuild { .. }
                | Instruction::User(_)
                | Instruction::Volume(_)
                | Instruction::Workdir(_)
                | Instruction::Stopsignal(_)
                | Instruction::Healthcheck(_)
                | Instruction::Shell(_) => out.push(ins),
                other => {
                    return Err(invalid(format!(
                        "{} is not a valid change command",
                        other.keyword().to_ascii_lowercase()
                    )))
                }
            }
        }
    }
    Ok(out)
}

/// Commits the container; returns the new image's ID.
pub async fn commit(engine: &Arc<Engine>, req: CommitRequest) -> Result<String, EngineError> {
    let changes = parse_changes(&req.changes)?;
    let record = berth_engine::find(engine, &req.container)?;
    let images = &engine.images;
    let _gc = images.gc_lock.read().await;
    let image = berth_engine::find_image(images, &record.image_id)
        .or_else(|_| berth_engine::find_image(images, &record.image))?;
    let mut cfg = berth_engine::image_config(images, &image)?;
    let paused = req.pause && record.state.status == Status::Running;
    if paused {
        berth_engine::pause(engine, &record.id).await?;
    }
    let layer = (|| {
        let upper = images
            .snapshots
            .fs_path(&record.snapshot)
            .map_err(|e| invalid(format!("the container's changes: {e}")))?;
        layers::store_layer(images, &cfg.rootfs.diff_ids, |w| {
            berth_snapshotter::diff::write_layer(&upper, w)
                .map(|_| ())
                .map_err(|e| format!("reading the container's changes: {e}"))
        })
        .map_err(invalid)
    })();
    if paused {
        berth_engine::unpause(engine, &record.id).await?;
    }
    let layer = layer?;

    // The container's own settings, then the changes.
    let c = cfg.config.get_or_insert_with(Default::default);
    c.env = (!record.env.is_empty()).then(|| record.env.clone());
    c.user = (!record.user.is_empty()).then(|| record.user.clone());
    c.working_dir = (!record.working_dir.is_empty()).then(|| record.working_dir.clone());
    if !record.labels.is_empty() {
        c.labels
            .get_or_insert_with(Default::default)
            .extend(record.labels.clone());
    }
    for p in &record.exposed_ports {
        c.exposed_ports
            .get_or_insert_with(Default::default)
            .insert(p.clone(), serde_json::json!({}));
    }
    if let Some(cmd) = record.request.get("Cmd").filter(|v| !v.is_null()) {
        c.cmd = serde_json::from_value(cmd.clone()).ok();
    }
    if let Some(ep) = record.request.get("Entrypoint").filter(|v| !v.is_null()) {
        c.entrypoint = serde_json::from_value(ep.clone()).ok();
    }
    let mut cmd_set = true;
    for ins in &changes {
        let env: Vec<(String, String)> = cfg
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect();
        let ins = expand(ins, '\\', &env).map_err(|e| invalid(e.to_string()))?;
        config::apply(&mut cfg, &ins, &mut cmd_set).map_err(invalid)?;
    }
    let now = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    cfg.created = Some(now.clone());
    if !req.author.is_empty() {
        cfg.author = Some(req.author.clone());
    }
    // The message is the image's own comment (not the parent's), as dockerd sets it.
    cfg.comment = (!req.comment.is_empty()).then(|| req.comment.clone());
    let mut command = vec![record.path.clone()];
    command.extend(record.args.clone());
    cfg.history.push(History {
        created: Some(now),
        created_by: Some(command.join(" ")),
        comment: (!req.comment.is_empty()).then(|| req.comment.clone()),
        empty_layer: None,
    });
    cfg.rootfs.diff_ids.push(layer.digest.clone());
    let mut all = image.layers.clone();
    all.push(layer);
    let (rec, old) =
        layers::write_image(images, &cfg, &all, req.reference.as_deref().unwrap_or(""))
            .map_err(invalid)?;
    if let Some(old) = old.filter(|o| o.config_digest != rec.config_digest) {
        let _ = images.keep_dangling(Some(old));
    }
    Ok(rec.config_digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_checked() {
        assert_eq!(
            parse_changes(&["ENV A=1\nCMD [\"sh\"]".into(), "EXPOSE 80".into()])
                .unwrap()
                .len(),
            3
        );
        let e = parse_changes(&["RUN true".into()]).unwrap_err();
        assert_eq!(e.to_string(), "run is not a valid change command");
        assert!(parse_changes(&["BOGUS x".into()]).is_err());
    }
}
