//! The metadata store: containers, pods, images, volumes and networks in SQLite.
//!
//! Every object is a JSON document keyed by (kind, id) with an optional name unique
//! within its kind. Writes go through transactions in WAL mode with full sync, so a
//! `kill -9` at any instant leaves the last committed state and nothing half-written.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The schema version this code writes; older databases are migrated on open.
const SCHEMA_VERSION: i64 = 1;

/// Errors from the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("metadata database {path} has schema version {found}, newer than this berthd ({SCHEMA_VERSION}); upgrade berthd")]
    TooNew { path: PathBuf, found: i64 },
    #[error("metadata database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata of {kind} {id}: {source}")]
    Json {
        kind: &'static str,
        id: String,
        source: serde_json::Error,
    },
    #[error("{kind} name {name:?} is already in use by {other_id}")]
    NameInUse {
        kind: &'static str,
        name: String,
        other_id: String,
    },
    #[error("metadata store lock poisoned by a panic in another thread")]
    Poisoned,
}

/// The kinds of object berthd keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Pod,
    Image,
    Volume,
    Network,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Pod => "pod",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Network => "network",
        }
    }
}

/// A handle on the metadata database, shared by every request handler.
pub struct Store {
    conn: Mutex<Connection>,
    /// Transactions committed so far: a reader that saw a value at one generation
    /// knows it unchanged while the generation is the same.
    generation: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates its schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = berth_db::open(path, SCHEMA_VERSION, |conn, _| {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS objects (
                     kind TEXT NOT NULL,
                     id   TEXT NOT NULL,
                     name TEXT,
                     data TEXT NOT NULL,
                     PRIMARY KEY (kind, id)
                 );
                 CREATE UNIQUE INDEX IF NOT EXISTS objects_name ON objects (kind, name)
                     WHERE name IS NOT NULL;
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
        })
        .map_err(|e| match e {
            berth_db::OpenError::TooNew { path, found, .. } => StoreError::TooNew { path, found },
            berth_db::OpenError::Sqlite { path, source } => StoreError::Open { path, source },
        })?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            conn: Mutex::new(conn),
            generation: Default::default(),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` in one immediate transaction: all of its writes land, or none do.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&Txn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&Txn { tx: &tx })?;
        tx.commit()?;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(value)
    }

    /// The number of transactions committed: read it before reading a value, and
    /// the value is current for as long as this number stays the same.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stores one object in its own transaction.
    pub fn put<T: Serialize>(
        &self,
        kind: Kind,
        id: &str,
        name: Option<&str>,
        value: &T,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| tx.put(kind, id, name, value))
    }

    /// Reads one object by id.
    pub fn get<T: DeserializeOwned>(&self, kind: Kind, id: &str) -> Result<Option<T>, StoreError> {
        let conn = self.lock()?;
        // Cached statements: health checks and watchers read records every second.
        let data: Option<String> = conn
            .prepare_cached("SELECT data FROM objects WHERE kind = ?1 AND id = ?2")?
            .query_row(params![kind.as_str(), id], |row| row.get(0))
            .optional()?;
        data.map(|data| decode(kind, id, &data)).transpose()
    }

    /// Two text fields of an object (SQLite `json_extract` paths such as
    /// `$.state.status`), without decoding the whole object: for a reader that polls one
    /// record every second (a health check asking whether its run goes on).
    pub fn get_fields(
        &self,
        kind: Kind,
        id: &str,
        paths: [&str; 2],
    ) -> Result<Option<[Option<String>; 2]>, StoreError> {
        let conn = self.lock()?;
        let fields = conn
            .prepare_cached(
                "SELECT json_extract(data, ?3), json_extract(data, ?4) FROM objects
                 WHERE kind = ?1 AND id = ?2",
            )?
            .query_row(params![kind.as_str(), id, paths[0], paths[1]], |row| {
                Ok([row.get(0)?, row.get(1)?])
            })
            .optional()?;
        Ok(fields)
    }

    /// The id of the object of `kind` called `name`, if any.
    pub fn id_by_name(&self, kind: Kind, name: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock()?;
        let id = conn
            .prepare_cached("SELECT id FROM objects WHERE kind = ?1 AND name = ?2")?
            .query_row(params![kind.as_str(), name], |row| row.get(0))
            .optional()?;
        Ok(id)
    }

    /// Every object of `kind` as (id, name, value), ordered by id.
    pub fn list<T: DeserializeOwned>(
        &self,
        kind: Kind,
    ) -> Result<Vec<(String, Option<String>, T)>, StoreError> {
        let conn = self.lock()?;
        let mut stmt =
            conn.prepare_cached("SELECT id, name, data FROM objects WHERE kind = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![kind.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, data) = row?;
            let value = decode(kind, &id, &data)?;
            out.push((id, name, value));
        }
        Ok(out)
    }

    /// Removes one object; true when it existed.
    pub fn delete(&self, kind: Kind, id: &str) -> Result<bool, StoreError> {
        self.transaction(|tx| tx.delete(kind, id))
    }
}

/// Writes inside one transaction.
pub struct Txn<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl Txn<'_> {
    /// Inserts or replaces an object; a name held by another object of the kind is an error.
    pub fn put<T: Serialize>(
        &self,
        kind: Kind,
        id: &str,
        name: Option<&str>,
        value: &T,
    ) -> Result<(), StoreError> {
        if let Some(name) = name {
            let holder: Option<String> = self
                .tx
                .query_row(
                    "SELECT id FROM objects WHERE kind = ?1 AND name = ?2",
                    params![kind.as_str(), name],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(other_id) = holder.filter(|other| other != id) {
                return Err(StoreError::NameInUse {
                    kind: kind.as_str(),
                    name: name.to_string(),
                    other_id,
                });
            }
        }
        let data = serde_json::to_string(value).map_err(|source| StoreError::Json {
            kind: kind.as_str(),
            id: id.to_string(),
            source,
        })?;
        self.tx.execute(
            "INSERT INTO objects (kind, id, name, data) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kind, id) DO UPDATE SET name = excluded.name, data = excluded.data",
            params![kind.as_str(), id, name, data],
        )?;
        Ok(())
    }

    /// Removes an object; true when it existed.
    pub fn delete(&self, kind: Kind, id: &str) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "DELETE FROM objects WHERE kind = ?1 AND id = ?2",
            params![kind.as_str(), id],
        )?;
        Ok(n > 0)
    }
}

fn decode<T: DeserializeOwned>(kind: Kind, id: &str, data: &str) -> Result<T, StoreError> {
    serde_json::from_str(data).map_err(|source| StoreError::Json {
        kind: kind.as_str(),
        id: id.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        seq: u64,
        payload: String,
    }

    fn open(dir: &Path) -> Store {
        match Store::open(&dir.join("berth.db")) {
            Ok(store) => store,
            Err(err) => panic!("open store: {err}"),
        }
    }

    /// A store in a new temp dir (kept while the dir lives) and a record for it.
    fn fresh() -> Result<(tempfile::TempDir, Store, Rec), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Open {
            path: "tmp".into(),
            source: rusqlite::Error::InvalidPath(e.to_string().into()),
        })?;
        let store = open(dir.path());
        let rec = Rec {
            seq: 1,
            payload: "a".into(),
        };
        Ok((dir, store, rec))
    }

    #[test]
    fn the_generation_moves_with_each_committed_write_only() -> Result<(), StoreError> {
        let (_dir, store, rec) = fresh()?;
        let g0 = store.generation();
        store.put(Kind::Container, "c1", Some("one"), &rec)?;
        let g1 = store.generation();
        assert!(g1 > g0);
        let _: Option<Rec> = store.get(Kind::Container, "c1")?;
        let _ = store.get_fields(Kind::Container, "c1", ["$.payload", "$.payload"])?;
        assert_eq!(store.generation(), g1, "reads move nothing");
        // A failed write (the name is another's) commits nothing.
        assert!(store.put(Kind::Container, "c2", Some("one"), &rec).is_err());
        assert_eq!(store.generation(), g1);
        assert!(store.delete(Kind::Container, "c1")?);
        assert!(store.generation() > g1);
        Ok(())
    }

    #[test]
    fn put_get_list_delete_and_names() -> Result<(), StoreError> {
        let (_dir, store, rec) = fresh()?;
        store.put(Kind::Container, "c1", Some("web"), &rec)?;
        assert_eq!(store.get::<Rec>(Kind::Container, "c1")?, Some(rec));
        assert_eq!(
            store.id_by_name(Kind::Container, "web")?.as_deref(),
            Some("c1")
        );
        // The same name in another kind is fine; in the same kind it is a conflict.
        store.put(
            Kind::Volume,
            "v1",
            Some("web"),
            &Rec {
                seq: 2,
                payload: "v".into(),
            },
        )?;
        let err = store.put(
            Kind::Container,
            "c2",
            Some("web"),
            &Rec {
                seq: 3,
                payload: "b".into(),
            },
        );
        assert!(matches!(err, Err(StoreError::NameInUse { ref other_id, .. }) if other_id == "c1"));
        assert!(
            store.get::<Rec>(Kind::Container, "c2")?.is_none(),
            "a refused put wrote nothing"
        );
        // A failed transaction leaves nothing behind.
        let failed = store.transaction(|tx| {
            tx.put(
                Kind::Container,
                "c3",
                Some("db"),
                &Rec {
                    seq: 4,
                    payload: "c".into(),
                },
            )?;
            tx.put(
                Kind::Container,
                "c4",
                Some("web"),
                &Rec {
                    seq: 5,
                    payload: "d".into(),
                },
            )
        });
        assert!(failed.is_err());
        assert!(store.get::<Rec>(Kind::Container, "c3")?.is_none());
        assert_eq!(store.list::<Rec>(Kind::Container)?.len(), 1);
        assert!(store.delete(Kind::Container, "c1")?);
        assert!(!store.delete(Kind::Container, "c1")?);
        assert!(store.id_by_name(Kind::Container, "web")?.is_none());
        Ok(())
    }

    /// The child half of `kill_9_leaves_a_consistent_database`: writes pairs of
    /// records in transactions until it is killed.
    #[test]
    #[ignore = "run only as the child process of kill_9_leaves_a_consistent_database"]
    fn crash_writer_child() -> Result<(), StoreError> {
        let Some(dir) = std::env::var_os("BERTH_STORE_CRASH_DIR") else {
            return Ok(());
        };
        let store = open(Path::new(&dir));
        for seq in 0.. {
            store.transaction(|tx| {
                let rec = Rec {
                    seq,
                    payload: "x".repeat(4096),
                };
                tx.put(Kind::Container, &format!("a{seq:08}"), None, &rec)?;
                tx.put(Kind::Pod, &format!("b{seq:08}"), None, &rec)
            })?;
        }
        Ok(())
    }

    #[test]
    fn kill_9_leaves_a_consistent_database() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for round in 0..3 {
            let mut child = Command::new(std::env::current_exe()?)
                .args([
                    "--exact",
                    "store::tests::crash_writer_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env("BERTH_STORE_CRASH_DIR", dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            std::thread::sleep(Duration::from_millis(300 + 150 * round));
            child.kill()?; // SIGKILL
            child.wait()?;
            let store = open(dir.path());
            let check: String = store
                .lock()?
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            assert_eq!(check, "ok");
            let containers = store.list::<Rec>(Kind::Container)?;
            let pods = store.list::<Rec>(Kind::Pod)?;
            assert!(
                !containers.is_empty(),
                "the writer committed something in round {round}"
            );
            // Both halves of every transaction, or neither.
            assert_eq!(containers.len(), pods.len());
            for ((_, _, a), (_, _, b)) in containers.iter().zip(&pods) {
                assert_eq!(a, b);
            }
            // Clear for the next round so each round checks its own writes.
            store.transaction(|tx| {
                for (id, _, _) in &containers {
                    tx.delete(Kind::Container, id)?;
                }
                for (id, _, _) in &pods {
                    tx.delete(Kind::Pod, id)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
