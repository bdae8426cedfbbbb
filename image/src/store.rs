//! Image records: name → manifest digest, config digest, layers, top chain ID.
//!
//! The records live in SQLite at `<root>/images.db` (a database of their own, so the
//! library, berthd and the CRI server can share a root without sharing berthd's
//! `berth.db`). One row per name: the name is the primary key, the config digest (the
//! image ID), the manifest digest and the creation time are columns for lookups, and the
//! whole [`ImageRecord`] is kept as JSON beside them. The database runs in WAL mode with
//! `synchronous=FULL` and every change is one transaction, so a `kill -9` at any instant
//! leaves the last committed state: a record exists only once everything it points at
//! is in place, and `tag` (read the source, write the target) and `remove` are atomic.
//!
//! `PRAGMA user_version` holds the schema version; a database written by a newer berth
//! is refused with an error instead of being misread. Version 2 keeps Docker's digest
//! references as rows of their own (`repo@sha256:…`, written by a pull by tag and by a
//! push, as Docker adds them); opening a version 1 database adds the digest reference of
//! every tagged record, which version 1 derived from the record instead.
//!
//! Records also carry the unpacked size of each layer (`diff_sizes`, what Docker reports
//! as an image's size). Records written before berth kept it have none until
//! [`ImageStore::backfill_diff_sizes`] measures their snapshots (berthd does at start).
//!
//! Stores written by older berth kept one JSON file per name under `<root>/images/`.
//! [`ImageStore::open`] imports those files in one transaction and only then deletes
//! them (see `store/legacy.rs`); a crash in between imports the same files again.

mod legacy;
mod migrate;
mod sizes;

pub use sizes::diff_sizes;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_snapshotter::{ContentStore, Digest, Snapshotter};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::manifest::Descriptor;
use crate::reference::Reference;

/// The database file under the root.
pub const DB_FILE: &str = "images.db";

/// The schema version this code reads and writes.
const SCHEMA_VERSION: i64 = 2;

/// Image store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image store: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A record file of an older store that is not a valid record.
    #[error("image record file {path}: {source}; fix or remove the file, then retry")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    // SQLite errors are boxed and paths shared to keep this error small: it is carried
    // inside the errors of pull, load, the CRI server and berthd.
    #[error("image database {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<rusqlite::Error>,
    },
    #[error("image database {path} has schema version {found}, newer than this berth understands ({SCHEMA_VERSION}); upgrade berth")]
    TooNew { path: PathBuf, found: i64 },
    #[error("image database {}: {op}: {source}", .path.display())]
    Sql {
        op: String,
        path: Arc<Path>,
        source: Box<rusqlite::Error>,
    },
    /// A row whose JSON does not decode, or decodes to another name.
    #[error("image {name:?} in {} is corrupt: {reason}; remove the row or the database and pull the image again", .path.display())]
    Corrupt {
        name: String,
        path: Arc<Path>,
        reason: Box<str>,
    },
    #[error("image database {}: lock poisoned by a panic in another thread", .0.display())]
    Poisoned(Arc<Path>),
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("garbage collection: {0}")]
    Gc(String),
}

/// What berth knows about one named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The normalised reference (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The digest of the index the manifest was selected from, if any.
    pub index_digest: Option<Digest>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    /// Layer descriptors (compressed blobs), bottom first.
    pub layers: Vec<Descriptor>,
    /// Diff IDs of the layers, bottom first.
    pub diff_ids: Vec<Digest>,
    /// The snapshot of the top layer (`None` for an image without layers).
    pub chain_id: Option<Digest>,
    /// Sum of the compressed layer sizes (what CRI reports, as containerd does).
    pub size: u64,
    pub created: u64,
    /// The unpacked size of each layer, bottom first, as Docker reports a layer's size
    /// ([`Snapshotter::diff_size`]). `None` in a record written before berth kept it,
    /// until [`ImageStore::backfill_diff_sizes`] measures it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_sizes: Option<Vec<u64>>,
}

impl ImageRecord {
    /// Every blob this image needs kept.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut out = vec![self.manifest_digest.clone(), self.config_digest.clone()];
        out.extend(self.index_digest.clone());
        out.extend(self.layers.iter().map(|l| l.digest.clone()));
        out
    }

    /// The unpacked size of the image: the sum of its layers' (Docker's image size).
    pub fn unpacked_size(&self) -> Option<u64> {
        self.diff_sizes.as_ref().map(|s| s.iter().sum())
    }

    /// The name of the digest reference a pull of this tagged record adds, as Docker
    /// does: `repo@<digest pulled>` (the index's digest when the manifest was selected
    /// from one). `None` for a digest reference or a dangling record (one named by
    /// its image ID, `sha256:…`, which is no reference).
    pub fn digest_ref(&self) -> Option<String> {
        if self.name.starts_with("sha256:") {
            return None;
        }
        let r = Reference::parse(&self.name).ok()?;
        if r.digest.is_some() || r.tag.is_none() {
            return None;
        }
        let digest = self.index_digest.as_ref().unwrap_or(&self.manifest_digest);
        Some(format!("{}@{digest}", r.name()))
    }
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub blobs: Vec<Digest>,
    /// Snapshot keys: the chain IDs of layers no image needs any more.
    pub snapshots: Vec<String>,
}

/// Named image records in `<root>/images.db`. Clones share one connection.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: Arc<Path>,
    conn: Mutex<Connection>,
}

impl fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageStore")
            .field("db", &self.inner.path)
            .finish()
    }
}

impl ImageStore {
    /// Opens (creating) `<root>/images.db`, then imports and deletes the record files
    /// an older berth left under `<root>/images/`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            op: "create",
            path: root.to_path_buf(),
            source,
        })?;
        let path = root.join(DB_FILE);
        let conn = open_db(&path)?;
        let store = ImageStore {
            inner: Arc::new(Inner {
                path: path.into(),
                conn: Mutex::new(conn),
            }),
        };
        if let Some(old) = legacy::read(root)? {
            store.import(&old.records)?;
            old.remove()?;
            if !old.records.is_empty() {
                tracing::info!(
                    count = old.records.len(),
                    from = %old.dir.display(),
                    to = %store.inner.path.display(),
                    "imported image records of an older berth"
                );
            }
        }
        Ok(store)
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.inner.path
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.inner
            .conn
            .lock()
            .map_err(|_| StoreError::Poisoned(self.inner.path.clone()))
    }

    fn sql(&self, op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        let op = op.into();
        move |source| StoreError::Sql {
            op,
            path: self.inner.path.clone(),
            source: Box::new(source),
        }
    }

    /// Runs `f` in one immediate transaction: all of its writes land, or none do.
    fn transaction<T>(
        &self,
        op: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql(format!("{op}: begin")))?;
        let value = f(&tx)?;
        tx.commit().map_err(self.sql(format!("{op}: commit")))?;
        Ok(value)
    }

    /// Writes (or replaces) a record in one transaction.
    pub fn put(&self, record: &ImageRecord) -> Result<(), StoreError> {
        self.transaction("put", |tx| self.write(tx, record))
    }

    /// Writes a pulled record and, for a tagged name, its digest reference
    /// ([`ImageRecord::digest_ref`]) unless that reference exists already, in one
    /// transaction (Docker keeps an existing digest reference as it is).
    pub fn put_pulled(&self, record: &ImageRecord) -> Result<(), StoreError> {
        self.transaction("put", |tx| {
            self.write(tx, record)?;
            if let Some(name) = record.digest_ref() {
                self.write_if_absent(tx, &renamed(record, name))?;
            }
            Ok(())
        })
    }

    /// Adds the digest reference `repo@digest` of the image `record` names (after a
    /// push of `record` produced the manifest `digest`), unless it exists already.
    /// Returns the reference's name.
    pub fn add_digest_ref(
        &self,
        record: &ImageRecord,
        digest: &Digest,
    ) -> Result<String, StoreError> {
        let repo = Reference::parse(&record.name)
            .map_err(|e| StoreError::Corrupt {
                name: record.name.clone(),
                path: self.inner.path.clone(),
                reason: format!("the name is not a reference: {e}").into(),
            })?
            .name();
        let name = format!("{repo}@{digest}");
        self.transaction("add digest reference", |tx| {
            self.write_if_absent(tx, &renamed(record, name.clone()))
        })?;
        Ok(name)
    }

    fn write_if_absent(
        &self,
        tx: &rusqlite::Transaction<'_>,
        record: &ImageRecord,
    ) -> Result<(), StoreError> {
        let exists = Self::read(tx, &record.name)
            .map_err(self.sql(format!("reading image {:?}", record.name)))?
            .is_some();
        if !exists {
            self.write(tx, record)?;
        }
        Ok(())
    }

    /// Writes `record` unless another name already refers to its image (config
    /// digest), in one transaction; true when written. (Docker keeps a replaced image
    /// as `<none>:<none>` only while nothing else names it.)
    pub fn put_unless_named(&self, record: &ImageRecord) -> Result<bool, StoreError> {
        self.transaction("put unless named", |tx| {
            let named: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM images WHERE config_digest = ?1)",
                    params![record.config_digest.to_string()],
                    |row| row.get(0),
                )
                .map_err(self.sql(format!("looking up image {}", record.config_digest)))?;
            if named {
                return Ok(false);
            }
            self.write(tx, record)?;
            Ok(true)
        })
    }

    fn write(
        &self,
        tx: &rusqlite::Transaction<'_>,
        record: &ImageRecord,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt {
            name: record.name.clone(),
            path: self.inner.path.clone(),
            reason: format!("encoding the record: {e}").into(),
        })?;
        // Seconds since the epoch fit an i64 for billions of years; the JSON keeps the
        // exact value either way.
        let created = i64::try_from(record.created).unwrap_or(i64::MAX);
        tx.prepare_cached(
            "INSERT OR REPLACE INTO images
                 (name, config_digest, manifest_digest, created, record)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                record.name,
                record.config_digest.to_string(),
                record.manifest_digest.to_string(),
                created,
                json,
            ])
        })
        .map_err(self.sql(format!("writing image {:?}", record.name)))?;
        Ok(())
    }

    /// Every record from `records`, in one transaction (the import of an older store),
    /// with the digest references those stores derived from tagged records.
    fn import(&self, records: &[ImageRecord]) -> Result<(), StoreError> {
        self.transaction("importing image record files", |tx| {
            records.iter().try_for_each(|r| self.write(tx, r))?;
            records
                .iter()
                .filter_map(|r| Some(renamed(r, r.digest_ref()?)))
                .try_for_each(|r| self.write_if_absent(tx, &r))
        })
    }

    fn decode(&self, name: &str, json: &str) -> Result<ImageRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            name: name.to_string(),
            path: self.inner.path.clone(),
            reason: reason.into(),
        };
        let record: ImageRecord = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
        if record.name != name {
            return Err(corrupt(format!(
                "the row holds the record of {:?}",
                record.name
            )));
        }
        Ok(record)
    }

    fn read(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
        conn.prepare_cached("SELECT record FROM images WHERE name = ?1")?
            .query_row(params![name], |row| row.get(0))
            .optional()
    }

    /// The record named `name` (normalised), if any.
    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>, StoreError> {
        let json = {
            let conn = self.lock()?;
            Self::read(&conn, name).map_err(self.sql(format!("reading image {name:?}")))?
        };
        json.map(|json| self.decode(name, &json)).transpose()
    }

    /// The records matching `where_clause` with `param`, ordered by name.
    fn query(
        &self,
        op: &str,
        where_clause: &str,
        param: Option<&str>,
    ) -> Result<Vec<ImageRecord>, StoreError> {
        let rows: Vec<(String, String)> = {
            let conn = self.lock()?;
            let sql = format!("SELECT name, record FROM images {where_clause} ORDER BY name");
            let mut stmt = conn.prepare_cached(&sql).map_err(self.sql(op))?;
            let map = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
            let rows = match param {
                Some(p) => stmt.query_map(params![p], map),
                None => stmt.query_map([], map),
            };
            rows.and_then(|rows| rows.collect()).map_err(self.sql(op))?
        };
        rows.iter()
            .map(|(name, json)| self.decode(name, json))
            .collect()
    }

    /// Every record, ordered by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.query("listing images", "", None)
    }

    /// The records of the image with config digest (image ID) `id`: all its names,
    /// ordered by name.
    pub fn by_config_digest(&self, id: &Digest) -> Result<Vec<ImageRecord>, StoreError> {
        self.query(
            "looking up images by ID",
            "WHERE config_digest = ?1",
            Some(&id.to_string()),
        )
    }

    /// Gives the image `source` another name, in one transaction; replaces what
    /// `target` named before.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord, StoreError> {
        self.transaction("tag", |tx| {
            let json = Self::read(tx, source)
                .map_err(self.sql(format!("reading image {source:?}")))?
                .ok_or_else(|| StoreError::NotFound(source.to_string()))?;
            let mut rec = self.decode(source, &json)?;
            rec.name = target.to_string();
            self.write(tx, &rec)?;
            Ok(rec)
        })
    }

    /// Removes the name `name` in one transaction; returns the removed record. Content
    /// is only freed by [`ImageStore::gc`], once no name refers to it.
    pub fn remove(&self, name: &str) -> Result<ImageRecord, StoreError> {
        self.transaction("remove", |tx| {
            let json = Self::read(tx, name)
                .map_err(self.sql(format!("reading image {name:?}")))?
                .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
            let rec = self.decode(name, &json)?;
            tx.execute("DELETE FROM images WHERE name = ?1", params![name])
                .map_err(self.sql(format!("removing image {name:?}")))?;
            Ok(rec)
        })
    }

    /// Removes blobs and committed snapshots no remaining image refers to (shared
    /// layers stay while any image uses them). Active snapshots (containers) and their
    /// parents are always kept. Returns (blobs removed, snapshots removed).
    pub fn gc(
        &self,
        content: &ContentStore,
        snapshots: &Snapshotter,
    ) -> Result<(usize, usize), StoreError> {
        let collected = self.collect(content, snapshots)?;
        Ok((collected.blobs.len(), collected.snapshots.len()))
    }

    /// [`ImageStore::gc`], saying what it removed.
    pub fn collect(
        &self,
        content: &ContentStore,
        snapshots: &Snapshotter,
    ) -> Result<Collected, StoreError> {
        let records = self.list()?;
        let blobs: HashSet<Digest> = records.iter().flat_map(|r| r.blobs()).collect();
        let chains: HashSet<String> = records
            .iter()
            .flat_map(|r| berth_snapshotter::digest::chain_ids(&r.diff_ids))
            .map(|d| d.to_string())
            .collect();
        let removed_snaps = snapshots
            .gc(&chains)
            .map_err(|e| StoreError::Gc(e.to_string()))?;
        let removed_blobs = content
            .gc(&blobs)
            .map_err(|e| StoreError::Gc(e.to_string()))?;
        Ok(Collected {
            blobs: removed_blobs.into_iter().map(|b| b.digest).collect(),
            snapshots: removed_snaps,
        })
    }
}

/// Opens the database with the settings crash consistency needs and brings its schema
/// to [`SCHEMA_VERSION`].
fn open_db(path: &Path) -> Result<Connection, StoreError> {
    berth_db::open(path, SCHEMA_VERSION, |conn, version| {
        if version < 1 {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS images (
                     name            TEXT PRIMARY KEY NOT NULL,
                     config_digest   TEXT NOT NULL,
                     manifest_digest TEXT NOT NULL,
                     created         INTEGER NOT NULL,
                     record          TEXT NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS images_config_digest ON images (config_digest);
                 CREATE INDEX IF NOT EXISTS images_manifest_digest ON images (manifest_digest);
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        migrate::add_digest_refs(conn)
    })
    .map_err(|e| match e {
        berth_db::OpenError::TooNew { path, found, .. } => StoreError::TooNew { path, found },
        berth_db::OpenError::Sqlite { path, source } => StoreError::Open {
            path,
            source: Box::new(source),
        },
    })
}

/// `record` under another name.
fn renamed(record: &ImageRecord, name: String) -> ImageRecord {
    ImageRecord {
        name,
        ..record.clone()
    }
}

#[cfg(test)]
mod tests;
