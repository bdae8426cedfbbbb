//! Schema migrations of the image database that rewrite rows.

use rusqlite::{params, Connection};

use super::{renamed, ImageRecord};

/// Schema 1 → 2: version 1 derived a digest reference from every tagged record; version
/// 2 keeps them as rows, so each tagged record's is added (unless present), in the
/// transaction that sets the version. A row that does not decode is left to the reads
/// that report it.
pub(super) fn add_digest_refs(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        // Another process may have migrated since the version was read.
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version >= 2 {
            return Ok(());
        }
        let rows: Vec<String> = conn
            .prepare("SELECT record FROM images ORDER BY name")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for json in rows {
            let Ok(rec) = serde_json::from_str::<ImageRecord>(&json) else {
                continue;
            };
            let Some(name) = rec.digest_ref() else {
                continue;
            };
            let Ok(json) = serde_json::to_string(&renamed(&rec, name.clone())) else {
                continue;
            };
            conn.execute(
                "INSERT OR IGNORE INTO images
                     (name, config_digest, manifest_digest, created, record)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    name,
                    rec.config_digest.to_string(),
                    rec.manifest_digest.to_string(),
                    i64::try_from(rec.created).unwrap_or(i64::MAX),
                    json,
                ],
            )?;
        }
        conn.execute_batch("PRAGMA user_version = 2")
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
