//! RUN: the command in a container of the step's image on berth's engine; its
//! filesystem changes (the snapshot's upper directory) become the step's layer. The
//! container is removed whatever happens.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::config::{ContainerConfig, NetworkMode, ProcessConfig};
use berth_engine::logs::files::Follower;
use berth_engine::logs::settings::LogSettings;
use berth_engine::{Engine, NewContainer};
use berth_image::manifest::Descriptor;

use super::{Cancelled, Output};

/// What a RUN container runs with.
pub struct RunSpec {
    /// The image (its ID) the container starts from.
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub network: NetworkMode,
    /// `RUN --mount`s.
    pub mounts: Vec<berth_engine::config::Mount>,
}

/// Runs the step; on success returns the layer of its changes (`None` for a RUN on
/// an image without layers whose command failed is an error, not a layer).
pub async fn run(
    engine: &Arc<Engine>,
    spec: RunSpec,
    diff_ids: &[berth_snapshotter::Digest],
    out: &Output,
    cancelled: Option<Cancelled>,
    keep: bool,
) -> Result<Descriptor, String> {
    let config = ContainerConfig {
        image: spec.image.clone(),
        process: ProcessConfig {
            // Replaces the image's entrypoint: the step's command runs as given.
            entrypoint: Some(vec![String::new()]),
            cmd: Some(spec.args.clone()),
            env: spec.env,
            user: spec.user,
            working_dir: spec.working_dir,
            ..Default::default()
        },
        mounts: spec.mounts,
        network: berth_engine::config::NetworkAttachment {
            mode: spec.network,
            ..Default::default()
        },
        ..Default::default()
    };
    let new = NewContainer {
        name: None,
        config,
        body: serde_json::json!({ "Image": spec.image, "Cmd": spec.args }),
        restart_policy: Default::default(),
        auto_remove: false,
        log_path: None,
        log: LogSettings::default(),
        cri: None,
        patch_spec: None,
    };
    let id = berth_engine::create(engine, new)
        .await
        .map_err(|e| e.to_string())?;
    out(format!(" ---> Running in {}\n", &id[..12]));
    let result = run_created(engine, &id, &spec.args, diff_ids, out, cancelled).await;
    if keep && result.is_ok() {
        return result;
    }
    let removed = berth_engine::remove(engine, &id, true).await;
    out(format!("Removing intermediate container {}\n", &id[..12]));
    let layer = result?;
    removed.map_err(|e| format!("removing the build container {}: {e}", &id[..12]))?;
    Ok(layer)
}

async fn run_created(
    engine: &Arc<Engine>,
    id: &str,
    args: &[String],
    diff_ids: &[berth_snapshotter::Digest],
    out: &Output,
    cancelled: Option<Cancelled>,
) -> Result<Descriptor, String> {
    let record = berth_engine::get(engine, id).map_err(|e| e.to_string())?;
    let log = engine.log_of(&record);
    let mut follower = Follower::from_start(&log, berth_engine::logs::cri_log::LogFormat::Cri);
    berth_engine::start(engine, id)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let done = berth_engine::wait_exit(engine, id, Some(Duration::from_millis(100)))
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(entries) = follower.read_entries() {
            for e in entries {
                out(String::from_utf8_lossy(&e.line).into_owned());
            }
        }
        if done {
            break;
        }
        if cancelled.as_ref().is_some_and(|c| c()) {
            // The container goes with the step (removed by the caller).
            let _ = berth_engine::kill(engine, id, "SIGKILL").await;
            let _ = berth_engine::wait_exit(engine, id, Some(Duration::from_secs(10))).await;
            return Err(super::CANCELLED.into());
        }
    }
    for e in follower.finish() {
        out(String::from_utf8_lossy(&e.line).into_owned());
    }
    let record = berth_engine::get(engine, id).map_err(|e| e.to_string())?;
    let code = record.state.exit_code;
    if code != 0 {
        return Err(format!(
            "The command '{}' returned a non-zero code: {code}",
            args.join(" ")
        ));
    }
    let images = &engine.images;
    let upper = images
        .snapshots
        .fs_path(&format!("container-{id}"))
        .map_err(|e| format!("the build container's changes: {e}"))?;
    super::layers::store_layer(images, diff_ids, |w| {
        berth_snapshotter::diff::write_layer(&upper, w)
            .map(|_| ())
            .map_err(|e| format!("reading the build container's changes: {e}"))
    })
}
