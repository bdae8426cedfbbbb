//! Durable pod sandbox records in SQLite (`<root>/cri/sandboxes.db`).
//!
//! A record is written once the sandbox is fully set up and updated on each state change,
//! each in one transaction, so a crash leaves either the old or the new record.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_cri::v1 as cri;
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};

use crate::CriError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    Ready,
    NotReady,
}

impl SandboxState {
    fn as_str(self) -> &'static str {
        match self {
            SandboxState::Ready => "ready",
            SandboxState::NotReady => "notready",
        }
    }

    pub fn to_cri(self) -> i32 {
        match self {
            SandboxState::Ready => cri::PodSandboxState::SandboxReady as i32,
            SandboxState::NotReady => cri::PodSandboxState::SandboxNotready as i32,
        }
    }
}

/// Everything berth keeps about one pod sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxRecord {
    pub id: String,
    /// `name_namespace_uid_attempt`: unique among live sandboxes.
    pub name_key: String,
    pub state: SandboxState,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    pub config: cri::PodSandboxConfig,
    pub runtime_handler: String,
    pub netns: Option<PathBuf>,
    pub ipc_ns: Option<PathBuf>,
    pub uts_ns: Option<PathBuf>,
    /// Pod IPs, IPv4 first.
    pub ips: Vec<String>,
    pub dir: PathBuf,
}

pub struct SandboxStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// The schema version this code reads and writes.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    name_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    config BLOB NOT NULL,
    runtime_handler TEXT NOT NULL,
    netns TEXT,
    ipc_ns TEXT,
    uts_ns TEXT,
    ips TEXT NOT NULL,
    dir TEXT NOT NULL
);";

impl SandboxStore {
    pub fn open(dir: &Path) -> Result<SandboxStore, CriError> {
        std::fs::create_dir_all(dir).map_err(CriError::io("create", dir))?;
        let path = dir.join("sandboxes.db");
        let db = |source| CriError::Database {
            path: path.clone(),
            source,
        };
        let conn = berth_db::open(&path, SCHEMA_VERSION, |conn, _| {
            // Version 0 is a new database or one from before versions were kept,
            // whose table is this one (CREATE … IF NOT EXISTS keeps it).
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = 1; COMMIT;"
            ))
        })
        .map_err(|e| match e {
            berth_db::OpenError::Sqlite { source, .. } => db(source),
            too_new @ berth_db::OpenError::TooNew { .. } => {
                CriError::FailedPrecondition(format!("pod sandbox database: {too_new}"))
            }
        })?;
        Ok(SandboxStore {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, CriError> {
        let conn = self.conn.lock().map_err(|_| {
            CriError::Internal(format!(
                "sandbox database {} lock poisoned",
                self.path.display()
            ))
        })?;
        f(&conn).map_err(|source| CriError::Database {
            path: self.path.clone(),
            source,
        })
    }

    pub fn insert(&self, r: &SandboxRecord) -> Result<(), CriError> {
        let ips = serde_json::to_string(&r.ips).map_err(|e| CriError::Internal(e.to_string()))?;
        let path_str = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let result = self.with(|c| {
            c.execute(
                "INSERT INTO sandboxes (id, name_key, state, created_at, config, runtime_handler, netns, ipc_ns, uts_ns, ips, dir)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    r.id,
                    r.name_key,
                    r.state.as_str(),
                    r.created_at,
                    r.config.encode_to_vec(),
                    r.runtime_handler,
                    path_str(&r.netns),
                    path_str(&r.ipc_ns),
                    path_str(&r.uts_ns),
                    ips,
                    r.dir.display().to_string(),
                ],
            )
        });
        match result {
            Err(CriError::Database {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            }) if e.code == rusqlite::ErrorCode::ConstraintViolation => Err(
                CriError::AlreadyExists(format!("pod sandbox {} already exists", r.name_key)),
            ),
            other => other.map(|_| ()),
        }
    }

    pub fn set_state(&self, id: &str, state: SandboxState) -> Result<(), CriError> {
        self.with(|c| {
            c.execute(
                "UPDATE sandboxes SET state = ?1 WHERE id = ?2",
                params![state.as_str(), id],
            )
        })?;
        Ok(())
    }

    /// Marks the network gone (after CNI DEL and netns removal).
    pub fn clear_network(&self, id: &str) -> Result<(), CriError> {
        self.with(|c| {
            c.execute(
                "UPDATE sandboxes SET netns = NULL, ips = '[]' WHERE id = ?1",
                params![id],
            )
        })?;
        Ok(())
    }

    pub fn delete(&self, id: &str) -> Result<(), CriError> {
        self.with(|c| c.execute("DELETE FROM sandboxes WHERE id = ?1", params![id]))?;
        Ok(())
    }

    pub fn by_name_key(&self, key: &str) -> Result<Option<SandboxRecord>, CriError> {
        self.query_one("SELECT * FROM sandboxes WHERE name_key = ?1", key)
    }

    pub fn get(&self, id: &str) -> Result<Option<SandboxRecord>, CriError> {
        self.query_one("SELECT * FROM sandboxes WHERE id = ?1", id)
    }

    /// The one sandbox whose id starts with `prefix` (crictl passes short ids).
    pub fn find(&self, prefix: &str) -> Result<Option<SandboxRecord>, CriError> {
        if prefix.is_empty() {
            return Ok(None);
        }
        let mut hits: Vec<SandboxRecord> = self
            .list()?
            .into_iter()
            .filter(|r| r.id.starts_with(prefix))
            .collect();
        match hits.len() {
            0 => Ok(None),
            1 => Ok(hits.pop()),
            _ => Err(CriError::InvalidArgument(format!(
                "sandbox id prefix {prefix:?} is ambiguous"
            ))),
        }
    }

    pub fn list(&self) -> Result<Vec<SandboxRecord>, CriError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare("SELECT * FROM sandboxes ORDER BY created_at")?;
            let rows = stmt
                .query_map([], raw_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        rows.into_iter().map(|raw| self.decode(raw)).collect()
    }

    pub fn count(&self) -> Result<u64, CriError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM sandboxes", [], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
    }

    fn query_one(&self, sql: &str, arg: &str) -> Result<Option<SandboxRecord>, CriError> {
        let raw = self.with(|c| c.query_row(sql, params![arg], raw_row).optional())?;
        raw.map(|r| self.decode(r)).transpose()
    }

    fn decode(&self, raw: RawRow) -> Result<SandboxRecord, CriError> {
        let corrupt = |what: &str| {
            CriError::Internal(format!(
                "sandbox {} in {}: bad {what}",
                raw.id,
                self.path.display()
            ))
        };
        let config =
            cri::PodSandboxConfig::decode(raw.config.as_slice()).map_err(|_| corrupt("config"))?;
        let ips: Vec<String> = serde_json::from_str(&raw.ips).map_err(|_| corrupt("ips"))?;
        let state = match raw.state.as_str() {
            "ready" => SandboxState::Ready,
            "notready" => SandboxState::NotReady,
            _ => return Err(corrupt("state")),
        };
        Ok(SandboxRecord {
            id: raw.id,
            name_key: raw.name_key,
            state,
            created_at: raw.created_at,
            config,
            runtime_handler: raw.runtime_handler,
            netns: raw.netns.map(PathBuf::from),
            ipc_ns: raw.ipc_ns.map(PathBuf::from),
            uts_ns: raw.uts_ns.map(PathBuf::from),
            ips,
            dir: PathBuf::from(raw.dir),
        })
    }
}

struct RawRow {
    id: String,
    name_key: String,
    state: String,
    created_at: i64,
    config: Vec<u8>,
    runtime_handler: String,
    netns: Option<String>,
    ipc_ns: Option<String>,
    uts_ns: Option<String>,
    ips: String,
    dir: String,
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get("id")?,
        name_key: r.get("name_key")?,
        state: r.get("state")?,
        created_at: r.get("created_at")?,
        config: r.get("config")?,
        runtime_handler: r.get("runtime_handler")?,
        netns: r.get("netns")?,
        ipc_ns: r.get("ipc_ns")?,
        uts_ns: r.get("uts_ns")?,
        ips: r.get("ips")?,
        dir: r.get("dir")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, key: &str) -> SandboxRecord {
        SandboxRecord {
            id: id.into(),
            name_key: key.into(),
            state: SandboxState::Ready,
            created_at: 1,
            config: cri::PodSandboxConfig {
                hostname: "h".into(),
                ..Default::default()
            },
            runtime_handler: String::new(),
            netns: Some("/run/x".into()),
            ipc_ns: None,
            uts_ns: None,
            ips: vec!["10.0.0.2".into()],
            dir: "/run/d".into(),
        }
    }

    #[test]
    fn records_survive_reopen_and_names_are_unique() -> Result<(), CriError> {
        let dir = tempfile::tempdir().map_err(CriError::io("tempdir", "/tmp"))?;
        {
            let s = SandboxStore::open(dir.path())?;
            s.insert(&record("abc1", "a_default_u_0"))?;
            assert!(matches!(
                s.insert(&record("abc2", "a_default_u_0")),
                Err(CriError::AlreadyExists(_))
            ));
            s.set_state("abc1", SandboxState::NotReady)?;
        }
        let s = SandboxStore::open(dir.path())?;
        let got = s
            .find("abc")?
            .ok_or_else(|| CriError::Internal("record lost".into()))?;
        assert_eq!(got.state, SandboxState::NotReady);
        assert_eq!(got.config.hostname, "h");
        assert_eq!(got.ips, vec!["10.0.0.2".to_string()]);
        s.delete("abc1")?;
        assert_eq!(s.count()?, 0);
        Ok(())
    }

    /// A database of a berth that kept no schema version (user_version 0) keeps its
    /// pods and gets version 1, durably written (synchronous FULL); one of a newer berth
    /// is refused before anything reads it.
    #[test]
    fn older_databases_are_versioned_and_newer_ones_refused(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        {
            let s = SandboxStore::open(dir.path())?;
            s.insert(&record("old1", "o_default_u_0"))?;
        }
        let path = dir.path().join("sandboxes.db");
        Connection::open(&path)?.pragma_update(None, "user_version", 0)?;
        let s = SandboxStore::open(dir.path())?;
        assert!(
            s.find("old1")?.is_some(),
            "the pod of the unversioned database"
        );
        let (version, sync): (i64, i64) = s.with(|c| {
            Ok((
                c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                c.pragma_query_value(None, "synchronous", |r| r.get(0))?,
            ))
        })?;
        assert_eq!((version, sync), (1, 2));
        drop(s);
        Connection::open(&path)?.pragma_update(None, "user_version", 7)?;
        let err = SandboxStore::open(dir.path()).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("schema version 7") && err.contains("upgrade berth"),
            "{err}"
        );
        Ok(())
    }

    /// Pod overhead and resources live in the recorded config (a protobuf blob), so
    /// they need no column: rows written before kubelet sent them decode with none.
    #[test]
    fn pod_overhead_and_resources_are_recorded_in_the_config() -> Result<(), CriError> {
        let dir = tempfile::tempdir().map_err(CriError::io("tempdir", "/tmp"))?;
        let mut r = record("ovh1", "o_default_u_0");
        r.config.linux = Some(cri::LinuxPodSandboxConfig {
            overhead: Some(cri::LinuxContainerResources {
                cpu_shares: 10,
                memory_limit_in_bytes: 32 << 20,
                ..Default::default()
            }),
            resources: Some(cri::LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                memory_limit_in_bytes: 256 << 20,
                ..Default::default()
            }),
            ..Default::default()
        });
        SandboxStore::open(dir.path())?.insert(&r)?;
        SandboxStore::open(dir.path())?.insert(&record("old1", "p_default_u_0"))?;
        let s = SandboxStore::open(dir.path())?;
        let got = s
            .get("ovh1")?
            .ok_or_else(|| CriError::Internal("record lost".into()))?;
        let linux = got.config.linux.unwrap_or_default();
        assert_eq!(
            linux.overhead.map(|o| o.memory_limit_in_bytes),
            Some(32 << 20)
        );
        assert_eq!(linux.resources.map(|r| r.cpu_quota), Some(50_000));
        let old = s
            .get("old1")?
            .ok_or_else(|| CriError::Internal("record lost".into()))?;
        assert!(old.config.linux.is_none());
        Ok(())
    }
}
