//! `create`: a record, a writable snapshot on the image, and a bundle whose
//! `config.json` comes from the container's config and the image. Nothing is left
//! behind when a step fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::record::{ContainerRecord, RunState};
use super::{blocking, image, now_rfc3339, put, EngineError};
use crate::config::{ContainerConfig, NetworkMode};
use crate::container_spec::{self, SpecInputs};
use crate::restart_policy::RestartPolicy;
use crate::Engine;

/// Changes a built spec before it is written (the CRI front door joins the pod's
/// namespaces and binds its files this way).
/// Called with the container's id and spec.
pub type SpecPatch =
    Box<dyn FnOnce(&str, &mut oci_spec::runtime::Spec) -> Result<(), EngineError> + Send>;

/// A validated container to create, from either front door.
pub struct NewContainer {
    /// Unique among containers; a readable one is generated when unset.
    pub name: Option<String>,
    pub config: ContainerConfig,
    /// What the record keeps as the request the client sent.
    pub body: Value,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    /// Where the shim writes the CRI-format log; the bundle's `container.log` when unset.
    pub log_path: Option<PathBuf>,
    /// The log's format and rotation.
    pub log: crate::logs::settings::LogSettings,
    pub cri: Option<super::record::CriMeta>,
    pub patch_spec: Option<SpecPatch>,
}

/// Creates the container: snapshot, bundle, spec, record. Returns its id.
pub async fn create(engine: &Arc<Engine>, new: NewContainer) -> Result<String, EngineError> {
    let NewContainer {
        name,
        mut config,
        body,
        restart_policy: policy,
        auto_remove,
        log_path,
        log,
        cri,
        patch_spec,
    } = new;
    let (runtime, _) = engine
        .runtimes
        .resolve(&config.runtime)
        .map_err(EngineError::Invalid)?;
    let img = image::find(&engine.images, &config.image)?;
    let image_config = image::config(&engine.images, &img)?;
    let defaults = image::defaults(&image_config);
    let exposed_ports = container_spec::ports::exposed(&config.network.exposed_ports, &defaults)
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    let health = health_of(&config, &image_config)?;
    let network_container = crate::networks::attach::container_mode(engine, &mut config)?;
    let endpoints = crate::networks::attach::endpoints_for(engine, &config)?;
    let networked = !endpoints.is_empty();
    crate::networks::attach::check_dns(&config.network)?;
    let n = &config.network;
    let dns_given = !(n.dns.is_empty() && n.dns_search.is_empty() && n.dns_options.is_empty());
    if dns_given && !networked {
        return Err(EngineError::Invalid(
            "conflicting options: dns and the network mode".into(),
        ));
    }
    let ports = if networked {
        crate::networks::ports::requested(&config.network, &exposed_ports)?
    } else {
        Vec::new()
    };
    let publishes = !config.network.published_ports.is_empty() || config.network.publish_all;
    if !networked && publishes && config.network.mode == NetworkMode::Default {
        return Err(EngineError::Invalid(
            "publishing ports needs the default bridge network, which this engine has not".into(),
        ));
    }
    let image_volumes: Vec<String> = image_config
        .config
        .as_ref()
        .and_then(|c| c.volumes.as_ref())
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let id = random_id();
    // Held until the record is stored (or the create fails): no other create can take
    // the name meanwhile.
    let claim = match &name {
        Some(name) => engine.names.claim(&engine.store, name, &id)?,
        None => engine
            .names
            .claim_generated(&engine.store, random_u64(), &id)?,
    };
    let dir = engine.dir(&id);
    let snapshot = format!("container-{id}");
    let parent = img.chain_id.as_ref().map(|c| c.to_string());

    let d = Arc::clone(engine);
    let (spec, dir, config, attached) = {
        let (id, snapshot, parent) = (id.clone(), snapshot.clone(), parent.clone());
        let defaults = defaults.clone();
        blocking(move || {
            let mut undo = Undo {
                dir: None,
                snapshot: None,
                volumes: Vec::new(),
                pending: Vec::new(),
                engine: &d,
            };
            let attached = crate::volumes::attach(&d, &mut config, &image_volumes)?;
            undo.volumes = attached.made.clone();
            undo.pending = attached.pending.clone();
            undo.dir = Some(dir.clone());
            std::fs::create_dir(&dir)
                .map_err(EngineError::internal(format!("creating {}", dir.display())))?;
            let mounts = d
                .images
                .snapshots
                .prepare(&snapshot, parent.as_deref())
                .map_err(EngineError::internal("preparing the root filesystem"))?;
            undo.snapshot = Some(snapshot.clone());
            if networked {
                crate::networks::attach::add_files(&d, &id, &mut config)?;
            } else {
                crate::networks::attach::add_extra_hosts_file(&d, &id, &mut config)?;
            }
            let rootfs = dir.join("rootfs");
            std::fs::create_dir(&rootfs).map_err(EngineError::internal(format!(
                "creating {}",
                rootfs.display()
            )))?;
            let mut spec = build_spec(
                &d,
                &id,
                &config,
                &defaults,
                &mounts,
                &rootfs,
                &attached.copy_up,
            )?;
            if networked {
                join_netns(&mut spec, &crate::networks::attach::netns_path(&d, &id));
            }
            if let Some(patch) = patch_spec {
                patch(&id, &mut spec)?;
            }
            let bytes = serde_json::to_vec_pretty(&spec)
                .map_err(EngineError::internal("encoding config.json"))?;
            std::fs::write(dir.join("config.json"), bytes)
                .map_err(EngineError::internal("writing config.json"))?;
            undo.disarm();
            Ok((spec, dir, config, attached))
        })
        .await?
    };

    let process = spec.process().clone().unwrap_or_default();
    let args: Vec<String> = process.args().clone().unwrap_or_default();
    let mut labels = image_config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    labels.extend(config.labels.clone());
    let record = ContainerRecord {
        id: id.clone(),
        name: claim.name.clone(),
        created: now_rfc3339(),
        image: config.image.clone(),
        image_id: img.config_digest.to_string(),
        snapshot: snapshot.clone(),
        parent_snapshot: parent,
        request: body,
        path: args.first().cloned().unwrap_or_default(),
        args: args.iter().skip(1).cloned().collect(),
        env: container_spec::config_env(&config.process, &defaults),
        exposed_ports,
        working_dir: process.cwd().to_string_lossy().into_owned(),
        user: config.process.user.clone(),
        labels,
        tty: config.process.tty,
        open_stdin: config.process.open_stdin,
        stdin_once: config.process.stdin_once,
        stop_signal: config
            .process
            .stop_signal
            .clone()
            .or(defaults.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into()),
        auto_remove,
        restart_policy: policy,
        bind_sources: Some(container_spec::bind_sources(&config)),
        volumes: attached.mounts,
        mounts: config.mounts.clone(),
        networks: endpoints,
        ports,
        network_container,
        state: RunState::default(),
        log_path,
        log,
        cri,
        runtime,
        health,
    };
    let stored = put(engine, &record);
    // The record names the volumes now (or nothing will).
    crate::volumes::release(engine, &attached.pending);
    if let Err(e) = stored {
        let _ = engine.images.snapshots.remove(&snapshot);
        let _ = std::fs::remove_dir_all(&dir);
        crate::volumes::detach(engine, &attached.made);
        return Err(e);
    }
    drop(claim);
    engine
        .events_log
        .container(&record, "create", std::iter::empty());
    tracing::info!(id = %id, name = %record.name, image = %record.image, "container created");
    Ok(id)
}

/// The container's health check over the image's `HEALTHCHECK`, checked; `None`
/// when neither has one.
fn health_of(
    config: &ContainerConfig,
    image: &berth_image::config::ImageConfig,
) -> Result<Option<crate::health::HealthConfig>, EngineError> {
    let from_image = image
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.clone())
        .and_then(|v| serde_json::from_value::<crate::health::HealthConfig>(v).ok());
    if let Some(own) = &config.health {
        own.validate()?;
    }
    let merged = match config.health.clone() {
        Some(own) => Some(own.over(from_image)),
        None => from_image,
    };
    Ok(merged.filter(|h| !h.test.is_empty()))
}

/// Mounts the snapshot for the time it takes to read users from it, builds the spec.
fn build_spec(
    engine: &Engine,
    id: &str,
    config: &ContainerConfig,
    defaults: &container_spec::ImageDefaults,
    mounts: &[berth_snapshotter::Mount],
    rootfs: &Path,
    copy_up: &[(PathBuf, String)],
) -> Result<oci_spec::runtime::Spec, EngineError> {
    let mut mounted = Vec::new();
    let result = (|| {
        for m in mounts {
            m.mount(rootfs)
                .map_err(EngineError::internal("mounting the root filesystem"))?;
            mounted.push(());
        }
        // A new volume is filled from the image while its root filesystem is mounted.
        for (volume, destination) in copy_up {
            crate::volumes::copy_up(rootfs, destination, volume).map_err(EngineError::internal(
                format!("filling the volume at {destination}"),
            ))?;
        }
        let caps = container_spec::bounding_set()
            .map_err(EngineError::internal("reading berthd's capabilities"))?;
        container_spec::build(&SpecInputs {
            id,
            config,
            image: defaults,
            rootfs,
            cgroups_path: format!("/berth/{id}"),
            held_caps: &caps,
            init_binary: engine.init_binary(),
        })
        .map_err(|e| EngineError::Invalid(e.to_string()))
    })();
    for _ in mounted {
        if let Err(e) = berth_snapshotter::mount::unmount(rootfs) {
            tracing::warn!(id, "unmounting {}: {e}", rootfs.display());
        }
    }
    result
}

/// Removes what a failed create made.
struct Undo<'a> {
    dir: Option<PathBuf>,
    snapshot: Option<String>,
    /// Volumes made for the container.
    volumes: Vec<String>,
    /// Volumes attached (in use until released).
    pending: Vec<String>,
    engine: &'a Engine,
}

impl Undo<'_> {
    fn disarm(&mut self) {
        self.dir = None;
        self.snapshot = None;
        self.volumes.clear();
        self.pending.clear();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.snapshot.take() {
            if let Err(e) = self.engine.images.snapshots.remove(&s) {
                tracing::warn!("removing snapshot {s} after a failed create: {e}");
            }
        }
        crate::volumes::release(self.engine, &self.pending);
        crate::volumes::detach(self.engine, &self.volumes);
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let mut filled = 0;
    // getrandom(2): no file to open per id (health checks make an exec id a second per
    // container); short reads and EINTR are retried.
    while filled < N {
        // SAFETY: writes at most N - filled bytes into `b` from `filled`.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    if filled < N {
        use std::io::Read;
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            let _ = f.read_exact(&mut b);
        }
    }
    b
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes::<8>())
}

/// A 64-hex-digit container id, as Docker's.
/// Points the spec's network namespace at the pin a start makes.
fn join_netns(spec: &mut oci_spec::runtime::Spec, path: &Path) {
    use oci_spec::runtime::LinuxNamespaceType;
    if let Some(linux) = spec.linux_mut() {
        if let Some(namespaces) = linux.namespaces_mut() {
            for ns in namespaces.iter_mut() {
                if ns.typ() == LinuxNamespaceType::Network {
                    ns.set_path(Some(path.to_path_buf()));
                }
            }
        }
    }
}

pub(crate) fn random_id() -> String {
    random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
