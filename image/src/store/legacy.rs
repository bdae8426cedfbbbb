//! The record files of stores written before the database: one JSON file per name,
//! `<root>/images/<sha256 of the name>.json`, written to a `.tmp` file and renamed.
//!
//! [`read`] parses every file; the caller imports the records in one transaction and
//! then calls [`Legacy::remove`]. A crash before the files are gone leaves files whose
//! records are already in the database, and importing them again (insert or replace)
//! changes nothing, so no step needs undoing.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{ImageRecord, StoreError};

/// What an older store left under `<root>/images/`.
pub(super) struct Legacy {
    pub dir: PathBuf,
    /// The parsed records, in file name order.
    pub records: Vec<ImageRecord>,
    /// The record files, and the `.tmp` files of writes a crash interrupted (never
    /// renamed, so never records).
    files: Vec<PathBuf>,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The old store under `root`, if its directory exists. A file that does not parse is
/// an error naming it, and nothing is imported: records are not dropped silently.
pub(super) fn read(root: &Path) -> Result<Option<Legacy>, StoreError> {
    let dir = root.join("images");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                op: "list",
                path: dir,
                source,
            })
        }
    };
    let mut json = Vec::new();
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err("list", &dir))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => json.push(path),
            Some("tmp") => files.push(path),
            // Not ours: left in place, and the directory with it.
            _ => {}
        }
    }
    json.sort();
    let mut records = Vec::with_capacity(json.len());
    for path in json {
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        let record = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        records.push(record);
        files.push(path);
    }
    Ok(Some(Legacy {
        dir,
        records,
        files,
    }))
}

impl Legacy {
    /// Deletes the files (their records are committed by now) and the directory when
    /// nothing else is left in it.
    pub fn remove(&self) -> Result<(), StoreError> {
        for path in &self.files {
            match fs::remove_file(path) {
                Ok(()) => {}
                // Another process opening the same root got there first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        op: "remove the imported record file",
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        let empty = fs::read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .next()
            .is_none();
        if !empty {
            tracing::info!(dir = %self.dir.display(), "files that are not image records left in place");
            // Make the removals durable so the records are not imported again.
            return File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync", &self.dir));
        }
        match fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                op: "remove the emptied directory",
                path: self.dir.clone(),
                source,
            }),
        }
    }
}
