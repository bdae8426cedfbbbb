//! The step cache, keyed by content: a step's key is the digest of its parent's key
//! and what the step is (the instruction after substitution, and for COPY/ADD the
//! checksum of every file it reads: names, types, modes and contents, not times). An
//! entry keeps the image state after the step (`<root>/build-cache/<key>.json`); it
//! is used only while the layers it names are still stored.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use berth_engine::images::Images;
use berth_image::config::ImageConfig;
use berth_image::manifest::Descriptor;
use berth_snapshotter::digest::chain_ids;
use berth_snapshotter::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Serialize, Deserialize)]
pub struct Entry {
    pub image: ImageConfig,
    pub layers: Vec<Descriptor>,
    pub cmd_set: bool,
}

/// One entry as [`Cache::list`] finds it.
pub struct Listed {
    pub key: String,
    pub file_bytes: u64,
    pub created: Option<std::time::SystemTime>,
    pub last_used: Option<std::time::SystemTime>,
    pub entry: Entry,
}

#[derive(Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// The key of a step after `parent`.
pub fn key(parent: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update([0]);
    h.update(step.as_bytes());
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Cache {
    pub fn open(root: &Path) -> Cache {
        Cache {
            dir: root.join("build-cache"),
        }
    }

    /// The entry for `key` if its layers are all still there.
    pub fn get(&self, images: &Images, key: &str) -> Option<Entry> {
        let bytes = fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        let present = e.layers.iter().all(|l| images.content.contains(&l.digest))
            && chain_ids(&e.image.rootfs.diff_ids)
                .iter()
                .all(|c| images.snapshots.exists(&c.to_string()));
        present.then_some(e)
    }

    /// Stores an entry (best effort: a cache that cannot be written only costs time).
    pub fn put(&self, key: &str, entry: &Entry) {
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(&self.dir)?;
            let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
            fs::write(&tmp, serde_json::to_vec(entry)?)?;
            fs::rename(&tmp, self.dir.join(format!("{key}.json")))
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, "cannot store a build cache entry");
        }
    }

    /// Every entry with its key, the bytes its file takes and the file's modification
    /// and access times (written when stored, read when used).
    pub fn list(&self) -> Vec<Listed> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json").filter(|k| !k.starts_with('.')) else {
                continue;
            };
            let Ok(meta) = e.metadata() else { continue };
            let Some(entry) = fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
            else {
                continue;
            };
            out.push(Listed {
                key: key.to_string(),
                file_bytes: meta.len(),
                created: meta.modified().ok(),
                last_used: meta.accessed().ok(),
                entry,
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.key.cmp(&b.key)));
        out
    }

    /// Removes every entry (`builder prune`); returns their keys and the bytes the
    /// entry files took.
    pub fn prune(&self) -> (Vec<String>, u64) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return (Vec::new(), 0);
        };
        let mut keys = Vec::new();
        let mut bytes = 0;
        for e in rd.flatten() {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(e.path()).is_ok() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(k) = name.strip_suffix(".json") {
                    keys.push(k.to_string());
                }
                bytes += size;
            }
        }
        keys.sort();
        (keys, bytes)
    }
}

/// The checksum of what a COPY/ADD reads from `ctx`: each source's tree in name
/// order (relative name, type, mode, content or link target).
pub fn checksum(ctx: &Path, sources: &[(String, PathBuf)]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for (rel, host) in sources {
        h.update(rel.as_bytes());
        h.update([0]);
        // The top-level source is followed, as the copy does.
        let meta = fs::metadata(host)?;
        tree(&mut h, host, &meta)?;
    }
    let _ = ctx;
    Ok(hex(&h.finalize()))
}

fn tree(h: &mut Sha256, path: &Path, meta: &fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    h.update(meta.mode().to_le_bytes());
    if meta.file_type().is_symlink() {
        h.update(b"l");
        h.update(fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else if meta.is_dir() {
        h.update(b"d");
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            h.update(n.as_encoded_bytes());
            h.update([0]);
            let p = path.join(&n);
            let m = fs::symlink_metadata(&p)?;
            tree(h, &p, &m)?;
        }
        h.update(b"/");
    } else if meta.is_file() {
        h.update(b"f");
        h.update(meta.len().to_le_bytes());
        let mut f = fs::File::open(path)?;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(())
}

/// A digest as a cache key part.
pub fn of_digest(d: &Digest) -> String {
    d.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_follows_content_not_times() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("d")).unwrap();
        fs::write(t.path().join("d/a"), "1").unwrap();
        let src = vec![("d".to_string(), t.path().join("d"))];
        let one = checksum(t.path(), &src).unwrap();
        // Rewriting the same content (a new mtime) keeps the checksum.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(t.path().join("d/a"), "1").unwrap();
        assert_eq!(checksum(t.path(), &src).unwrap(), one);
        fs::write(t.path().join("d/a"), "2").unwrap();
        assert_ne!(checksum(t.path(), &src).unwrap(), one);
        fs::write(t.path().join("d/b"), "").unwrap();
        let three = checksum(t.path(), &src).unwrap();
        assert_ne!(three, one);
        assert_ne!(key("p", "COPY"), key("q", "COPY"));
        assert_ne!(key("p", "COPY a"), key("p", "COPY b"));
    }
}
