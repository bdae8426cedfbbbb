//! The one way berth opens its SQLite databases (containers, images, pod sandboxes):
//! WAL with `synchronous=FULL`, so a crash at any instant leaves the last committed
//! transaction on disk; a busy timeout, so a second connection waits instead of failing;
//! and a schema version in `PRAGMA user_version`, so a database written by a newer
//! berth is refused with a clear error instead of being misread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// How long a connection waits for another's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening {}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// Written by a newer berth: its schema is not this one's to read or migrate.
    #[error("{} has schema version {found}, newer than this berth understands ({supported}); upgrade berth", .path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
}

/// Opens (creating if needed) the database at `path` with berth's settings and brings
/// its schema to `version`: `migrate` is called with the version found (0 for a new
/// database) when it is older, and must leave `PRAGMA user_version` at `version`, in
/// the same transaction as its changes.
pub fn open(
    path: &Path,
    version: i64,
    migrate: impl FnOnce(&Connection, i64) -> rusqlite::Result<()>,
) -> Result<Connection, OpenError> {
    let sqlite = |source| OpenError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite)?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite)?;
    if found > version {
        return Err(OpenError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: version,
        });
    }
    if found < version {
        migrate(&conn, found).map_err(sqlite)?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_versions_and_newer_databases() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.db");
        let mut seen = Vec::new();
        let conn = open(&path, 1, |c, from| {
            seen.push(from);
            c.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 1;")
        })?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        let busy: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?;
        assert_eq!((mode.as_str(), sync, busy), ("wal", 2, 10_000));
        drop(conn);
        // The same version again: no migration.
        open(&path, 1, |_, from| {
            seen.push(from);
            Ok(())
        })?;
        // A newer schema: migrated from the version found.
        open(&path, 2, |c, from| {
            seen.push(from);
            c.execute_batch("PRAGMA user_version = 2;")
        })?;
        assert_eq!(seen, [0, 1]);
        // An older berth refuses it, naming the file and both versions.
        let err = open(&path, 1, |_, _| Ok(())).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("t.db") && err.contains("version 2") && err.contains("(1)"),
            "{err}"
        );
        Ok(())
    }
}
