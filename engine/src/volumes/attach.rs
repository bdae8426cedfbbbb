//! A container's volumes at create: anonymous ones for the image's `VOLUME` paths no
//! mount covers, each volume made on first use (named ones as Docker makes them, with
//! no labels), its data directory filled into the config, and what the record keeps.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{create_locked, data_dir, read, remove, NewVolume};
use crate::config::{ContainerConfig, Mount, MountKind};
use crate::container_spec::clean_path;
use crate::{Engine, EngineError};

/// A volume a container mounts, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub name: String,
    /// The absolute path in the container.
    pub destination: String,
    #[serde(default)]
    pub read_only: bool,
    /// The volume was made for this container (`-v /path`, an image's `VOLUME`): it
    /// goes with the container when asked (`rm -v`, `--rm`).
    #[serde(default)]
    pub anonymous: bool,
}

/// What attaching made.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    pub mounts: Vec<VolumeMount>,
    /// (data directory, destination): fill from the image when the volume is empty.
    pub copy_up: Vec<(PathBuf, String)>,
    /// Volumes made here (anonymous ones, and named ones that did not exist): removed
    /// again if the create fails, so a refused create leaves nothing.
    pub made: Vec<String>,
    /// Every volume attached: in use until [`release`] (the record names them then).
    pub pending: Vec<String>,
}

/// Adds the image's volumes (when the config asks), makes or finds every volume the
/// config mounts and fills in its data directory. Each is in use from then on, so no
/// removal or prune takes it before the record is stored; the caller [`release`]s
/// them after storing the record (or before undoing). On an error, the volumes made
/// so far are removed again.
pub(crate) fn attach(
    engine: &Engine,
    config: &mut ContainerConfig,
    image_volumes: &[String],
) -> Result<Attached, EngineError> {
    if config.image_volumes {
        for path in image_volumes {
            let destination = clean_path(path);
            if config.mounts.iter().any(|m| m.destination == destination) {
                continue;
            }
            config.mounts.push(Mount {
                destination,
                kind: MountKind::Volume {
                    name: None,
                    read_only: false,
                    nocopy: false,
                    source: String::new(),
                    create: Default::default(),
                },
            });
        }
    }
    let mut attached = Attached::default();
    let result = (|| {
        for m in &mut config.mounts {
            let MountKind::Volume {
                name,
                read_only,
                nocopy,
                source,
                create,
            } = &mut m.kind
            else {
                continue;
            };
            let anonymous = name.is_none();
            let guard = engine.volumes_lock();
            let existed = match name {
                Some(n) => read(engine, n)?.is_some(),
                None => false,
            };
            let volume = create_locked(
                engine,
                NewVolume {
                    name: name.clone(),
                    anonymous,
                    labels: create.labels.clone(),
                    options: create.options.clone(),
                    ..Default::default()
                },
            )?;
            let vname = volume.record.name.clone();
            engine.volumes_pending_add(&vname);
            attached.pending.push(vname.clone());
            drop(guard);
            if !existed {
                attached.made.push(vname.clone());
            }
            *source = data_dir(engine, &vname).to_string_lossy().into_owned();
            // A device mounted only while a container runs is not filled from the
            // image (it is not mounted now).
            if !*nocopy && volume.record.options.is_empty() {
                attached
                    .copy_up
                    .push((PathBuf::from(source.as_str()), m.destination.clone()));
            }
            attached.mounts.push(VolumeMount {
                name: vname.clone(),
                destination: m.destination.clone(),
                read_only: *read_only,
                anonymous,
            });
            *name = Some(vname);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(attached),
        Err(e) => {
            release(engine, &attached.pending);
            detach(engine, &attached.made);
            Err(e)
        }
    }
}

/// Ends the in-use mark [`attach`] set: the record names the volumes now, or the create
/// failed.
pub(crate) fn release(engine: &Engine, names: &[String]) {
    for name in names {
        engine.volumes_pending_remove(name);
    }
}

/// Removes volumes a failed create made, or a removed container's anonymous ones; a
/// volume still in use by another container stays. Errors are logged: the container is gone.
pub(crate) fn detach(engine: &Engine, names: &[String]) {
    for name in names {
        match remove(engine, name, true) {
            Ok(()) => {}
            Err(EngineError::VolumeInUse { .. }) => {
                tracing::debug!(volume = %name, "anonymous volume still in use; kept")
            }
            Err(e) => tracing::warn!(volume = %name, error = %e, "removing an anonymous volume"),
        }
    }
}
