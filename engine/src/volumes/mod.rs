//! Volumes of the local driver: a record in the store (kind `volume`, keyed by name)
//! and a directory `<root>/volumes/<name>/_data`, as Docker keeps them. Named ones are
//! made by `create` (or on a container's first use); anonymous ones have a generated
//! 64-hex name and go with their container (`rm -v`) or a prune.
//!
//! A volume is in use while a container record names it (`ContainerRecord::volumes`),
//! whatever the container's state; removal is refused then, as Docker refuses it.

mod attach;
mod copy_up;
pub(crate) mod filter;
pub mod local_opts;
pub mod name;

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use attach::VolumeMount;
pub(crate) use attach::{attach, detach, release};
pub use copy_up::copy_up;
pub use filter::VolumeFilter;

use crate::record::ContainerRecord;
use crate::store::Kind;
use crate::{Engine, EngineError, Object};

/// The version of [`VolumeRecord`] this code writes; a newer record is refused rather
/// than misread (the store's rule for its schema, per record here).
pub const RECORD_VERSION: u32 = 1;

/// The only driver berth has.
pub const LOCAL_DRIVER: &str = "local";

/// A volume as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub version: u32,
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The local driver's options (`type`, `device`, `o`: [`local_opts`]); with them
    /// the data directory is a mount while a container using the volume runs.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// RFC 3339, seconds.
    pub created_at: String,
    /// Made for a container's `-v /path` or an image's `VOLUME`, not by name.
    #[serde(default)]
    pub anonymous: bool,
}

/// A volume with what is known about it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub record: VolumeRecord,
    /// The directory containers see: `<root>/volumes/<name>/_data`.
    pub mountpoint: PathBuf,
    /// The containers (ids) that use it.
    pub used_by: Vec<String>,
}

/// What `create` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVolume {
    /// `None` or empty: a generated name (64 hex digits).
    pub name: Option<String>,
    /// Made for a container's `-v /path` or an image's `VOLUME` (pruned by default).
    pub anonymous: bool,
    /// `None` or empty: local.
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// What `prune` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Named volumes too, not only anonymous ones.
    pub all: bool,
    /// Only the unused volumes this filter also takes (its `dangling` is ignored).
    pub filter: VolumeFilter,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub names: Vec<String>,
    /// Bytes of the files removed.
    pub bytes: u64,
}

/// `<root>/volumes`.
pub fn dir(engine: &Engine) -> PathBuf {
    engine.root().join("volumes")
}

/// The data directory of volume `name`.
pub fn data_dir(engine: &Engine, name: &str) -> PathBuf {
    dir(engine).join(name).join("_data")
}

/// Creates a volume, or answers the existing one of that name when its driver is the
/// same (Docker's create is idempotent); anything refused is refused before anything
/// is made.
pub fn create(engine: &Engine, new: NewVolume) -> Result<Volume, EngineError> {
    let _guard = engine.volumes_lock();
    create_locked(engine, new)
}

/// `create` with the volumes' lock held.
fn create_locked(engine: &Engine, new: NewVolume) -> Result<Volume, EngineError> {
    let driver = match new.driver.as_deref() {
        None | Some("") => LOCAL_DRIVER,
        Some(LOCAL_DRIVER) => LOCAL_DRIVER,
        Some(other) => {
            return Err(EngineError::Invalid(format!(
                "error looking up volume plugin {other}: plugin {other:?} not found (berth has only the local driver)"
            )))
        }
    };
    let anonymous = new.anonymous;
    let name = match new.name {
        Some(n) if !n.is_empty() => n,
        _ => name::generated(),
    };
    local_opts::parse(&new.options)
        .map_err(|e| EngineError::Invalid(format!("create {name}: {e}")))?;
    if !name::is_valid(&name) {
        return Err(EngineError::Invalid(format!(
            "create {name}: {name:?} includes invalid characters for a local volume name, only {:?} are allowed. If you intended to pass a host directory, use absolute path",
            name::NAME_PATTERN
        )));
    }
    if let Some(existing) = read(engine, &name)? {
        if existing.driver != driver {
            return Err(EngineError::Invalid(format!(
                "create {name}: volume name {name:?} is already in use by driver {:?}",
                existing.driver
            )));
        }
        return with_users(engine, existing);
    }
    let record = VolumeRecord {
        version: RECORD_VERSION,
        name: name.clone(),
        driver: driver.to_string(),
        labels: new.labels,
        options: new.options,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        anonymous,
    };
    let data = data_dir(engine, &name);
    make_dirs(engine, &name)?;
    if let Err(e) = engine.store.put(Kind::Volume, &name, None, &record) {
        // Nothing of a refused create stays.
        let _ = std::fs::remove_dir_all(dir(engine).join(&name));
        return Err(e.into());
    }
    tracing::debug!(volume = %name, anonymous, "volume created");
    Ok(Volume {
        record,
        mountpoint: data,
        used_by: Vec::new(),
    })
}

/// `<root>/volumes` (0701, as Docker's), `<name>` and `<name>/_data` (0755).
fn make_dirs(engine: &Engine, name: &str) -> Result<(), EngineError> {
    let top = dir(engine);
    let mut b = std::fs::DirBuilder::new();
    for (path, mode) in [
        (top.clone(), 0o701),
        (top.join(name), 0o755),
        (top.join(name).join("_data"), 0o755),
    ] {
        b.mode(mode);
        match b.create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(e) => {
                return Err(EngineError::Internal {
                    context: format!("creating {}", path.display()),
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}

/// The volume called `name`.
pub fn get(engine: &Engine, name: &str) -> Result<Volume, EngineError> {
    let record = read(engine, name)?.ok_or_else(|| not_found(name))?;
    with_users(engine, record)
}

/// Every volume the filter takes, by name.
pub fn list(engine: &Engine, filter: &VolumeFilter) -> Result<Vec<Volume>, EngineError> {
    let users = users(engine)?;
    let mut out = Vec::new();
    for record in records(engine)? {
        let used_by = users.get(&record.name).cloned().unwrap_or_default();
        if filter.matches(
            &record.name,
            &record.driver,
            &record.labels,
            !used_by.is_empty(),
        ) {
            out.push(Volume {
                mountpoint: data_dir(engine, &record.name),
                record,
                used_by,
            });
        }
    }
    out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Ok(out)
}

/// Removes a volume and its data. In use: refused, even with `force`; `force` only
/// makes a missing volume no error (Docker's rule).
pub fn remove(engine: &Engine, name: &str, force: bool) -> Result<(), EngineError> {
    let _guard = engine.volumes_lock();
    let Some(record) = read(engine, name)? else {
        return if force { Ok(()) } else { Err(not_found(name)) };
    };
    let used_by = users(engine)?.remove(&record.name).unwrap_or_default();
    if !used_by.is_empty() {
        return Err(EngineError::VolumeInUse {
            name: record.name,
            containers: used_by,
        });
    }
    destroy(engine, &record.name)
}

/// Removes the unused volumes: anonymous ones, or with `all` named ones too, that the
/// filter takes.
pub fn prune(engine: &Engine, options: &PruneOptions) -> Result<Pruned, EngineError> {
    let _guard = engine.volumes_lock();
    let users = users(engine)?;
    let filter = VolumeFilter {
        dangling: None,
        ..options.filter.clone()
    };
    let mut pruned = Pruned::default();
    for record in records(engine)? {
        if users.contains_key(&record.name)
            || !(options.all || record.anonymous)
            || !filter.matches(&record.name, &record.driver, &record.labels, false)
        {
            continue;
        }
        // A device still mounted (left by a crash) is not what the prune frees.
        if let Err(e) = local_opts::unmount_all(&data_dir(engine, &record.name)) {
            tracing::warn!(volume = %record.name, error = %e, "prune: cannot unmount the volume");
            continue;
        }
        let size = du(&dir(engine).join(&record.name));
        match destroy(engine, &record.name) {
            Ok(()) => {
                pruned.bytes += size;
                pruned.names.push(record.name);
            }
            Err(e) => {
                tracing::warn!(volume = %record.name, error = %e, "prune: cannot remove the volume")
            }
        }
    }
    Ok(pruned)
}

/// The data, then the record: a failure leaves the record, so the volume can be
/// removed again.
fn destroy(engine: &Engine, name: &str) -> Result<(), EngineError> {
    let path = dir(engine).join(name);
    // Never into a mounted device (a bind's files are the host's).
    local_opts::unmount_all(&data_dir(engine, name)).map_err(|e| EngineError::Internal {
        context: format!("removing volume {name}"),
        source: e.into(),
    })?;
    match std::fs::remove_dir_all(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(EngineError::Internal {
                context: format!("removing volume {name} ({})", path.display()),
                source: e.into(),
            })
        }
    }
    engine.store.delete(Kind::Volume, name)?;
    tracing::debug!(volume = %name, "volume removed");
    Ok(())
}

/// Mounts the volumes among `names` that have the local driver's options and are not
/// mounted yet, for a container that starts. Each such volume is marked in use until
/// the caller [`release`]s the returned names (once the container runs, or its start
/// failed; then [`unmount_unused`]).
pub(crate) fn mount_for_start(
    engine: &Engine,
    names: &[String],
) -> Result<Vec<String>, EngineError> {
    let _guard = engine.volumes_lock();
    let mut marked = Vec::new();
    let result = (|| {
        for name in names {
            let Some(record) = read(engine, name)? else {
                continue;
            };
            let Ok(Some(m)) = local_opts::parse(&record.options) else {
                continue;
            };
            engine.volumes_pending_add(name);
            marked.push(name.clone());
            let data = data_dir(engine, name);
            if !local_opts::is_mounted(&data) {
                m.mount(&data).map_err(|e| {
                    EngineError::Invalid(format!(
                        "error while mounting volume '{}': {e}",
                        data.display()
                    ))
                })?;
                tracing::debug!(volume = %name, "volume mounted");
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(marked),
        Err(e) => {
            release(engine, &marked);
            drop(_guard);
            unmount_unused(engine, &marked, None);
            Err(e)
        }
    }
}

/// Unmounts the volumes among `names` that are mounted and that no running (or
/// starting) container uses any more, `exited` (a container whose exit is being
/// recorded) not counted. Errors are logged: the container has stopped.
pub(crate) fn unmount_unused(engine: &Engine, names: &[String], exited: Option<&str>) {
    let _guard = engine.volumes_lock();
    let pending = engine.volumes_pending_names();
    let records = match engine.store.list::<ContainerRecord>(Kind::Container) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "volumes: cannot read containers; nothing unmounted");
            return;
        }
    };
    for name in names {
        let data = data_dir(engine, name);
        if pending.contains(name) || !local_opts::is_mounted(&data) {
            continue;
        }
        let running = records.iter().any(|(id, _, r)| {
            Some(id.as_str()) != exited
                && r.state.status.has_task()
                && r.volumes.iter().any(|v| &v.name == name)
        });
        if running {
            continue;
        }
        match local_opts::unmount_all(&data) {
            Ok(()) => tracing::debug!(volume = %name, "volume unmounted"),
            Err(e) => tracing::warn!(volume = %name, error = %e, "unmounting a volume"),
        }
    }
}

fn not_found(name: &str) -> EngineError {
    EngineError::NotFound {
        what: Object::Volume,
        reference: name.to_string(),
    }
}

fn check_version(record: VolumeRecord) -> Result<VolumeRecord, EngineError> {
    if record.version > RECORD_VERSION {
        return Err(EngineError::Internal {
            context: format!("reading volume {}", record.name),
            source: format!(
                "its record has version {}, newer than this berthd ({RECORD_VERSION}); upgrade berthd",
                record.version
            )
            .into(),
        });
    }
    Ok(record)
}

fn read(engine: &Engine, name: &str) -> Result<Option<VolumeRecord>, EngineError> {
    engine
        .store
        .get::<VolumeRecord>(Kind::Volume, name)?
        .map(check_version)
        .transpose()
}

fn records(engine: &Engine) -> Result<Vec<VolumeRecord>, EngineError> {
    engine
        .store
        .list::<VolumeRecord>(Kind::Volume)?
        .into_iter()
        .map(|(_, _, r)| check_version(r))
        .collect()
}

/// What a volume attached by a create in progress (no record names it yet) is used by.
const BEING_CREATED: &str = "(a container being created)";

/// Volume name → the containers (ids) whose records name it; a volume attached by a
/// create in progress is used by [`BEING_CREATED`].
fn users(engine: &Engine) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in engine.volumes_pending_names() {
        map.entry(name).or_default().push(BEING_CREATED.to_string());
    }
    for (id, _, record) in engine.store.list::<ContainerRecord>(Kind::Container)? {
        for v in record.volumes {
            let users = map.entry(v.name).or_default();
            if !users.contains(&id) {
                users.push(id.clone());
            }
        }
    }
    Ok(map)
}

fn with_users(engine: &Engine, record: VolumeRecord) -> Result<Volume, EngineError> {
    let used_by = users(engine)?.remove(&record.name).unwrap_or_default();
    Ok(Volume {
        mountpoint: data_dir(engine, &record.name),
        record,
        used_by,
    })
}

/// Bytes of the files under `path` as Docker counts a directory's size: regular files
/// and symlinks (their own size, not followed), each inode once, directories not
/// counted; what cannot be read counts nothing.
pub fn du(path: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    du_walk(path, &mut seen)
}

fn du_walk(path: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if seen.insert((meta.dev(), meta.ino())) {
            meta.len()
        } else {
            0
        };
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| du_walk(&e.path(), seen)).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
