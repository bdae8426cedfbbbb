//! Shared test helpers: a berth store in a temp dir, a puller, tree comparison, and a
//! tiny hostile HTTP registry for inputs no real registry would serve.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use berth_image::registry::RegistryConfig;
use berth_image::{Client, ImageStore, PullOptions, Puller};
use berth_snapshotter::{ContentStore, Snapshotter};

pub struct Store {
    pub dir: tempfile::TempDir,
    pub content: ContentStore,
    pub snapshots: Arc<Snapshotter>,
    pub images: ImageStore,
}

impl Store {
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        Ok(Store {
            content: ContentStore::open(dir.path())?,
            snapshots: Arc::new(Snapshotter::open(dir.path())?),
            images: ImageStore::open(dir.path())?,
            dir,
        })
    }

    pub fn puller(&self, config: RegistryConfig) -> Result<Puller> {
        let client = Arc::new(Client::new(config)?);
        Ok(Puller::new(
            client,
            self.content.clone(),
            self.snapshots.clone(),
            self.images.clone(),
        ))
    }

    /// Everything under the store root except `content/ingest` temp files, to check that
    /// a failed operation wrote nothing.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk_paths(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }
}

fn walk_paths(root: &Path, p: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk_paths(root, &path, out);
            }
        }
    }
}

pub fn plain(host: &str) -> RegistryConfig {
    let mut c = RegistryConfig::default();
    c.host_mut(host).insecure = true;
    c
}

pub fn opts() -> PullOptions {
    PullOptions::default()
}

/// Mounts a read-only view of the image's top snapshot; unmounts on drop.
pub struct Mounted {
    pub target: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = berth_snapshotter::mount::unmount(&self.target);
    }
}

pub fn mount_view(store: &Store, chain: &str, key: &str) -> Result<Mounted> {
    let mounts = store.snapshots.view(key, Some(chain))?;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("rootfs");
    fs::create_dir(&target)?;
    mounts[0].mount(&target)?;
    Ok(Mounted { target, _dir: dir })
}

/// Type, mode, owner, link target and content digest of every path under `root`.
pub fn tree(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    tree_walk(root, root, &mut out)?;
    Ok(out)
}

fn tree_walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
    for e in fs::read_dir(p).with_context(|| format!("read_dir {}", p.display()))? {
        let e = e?;
        let path = e.path();
        let m = fs::symlink_metadata(&path)?;
        let rel = path.strip_prefix(root)?.display().to_string();
        let ft = m.file_type();
        let desc = if ft.is_symlink() {
            format!("link -> {}", fs::read_link(&path)?.display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            format!("file {}", berth_snapshotter::Digest::of(&fs::read(&path)?))
        } else if ft.is_char_device() {
            format!("chr {}", m.rdev())
        } else {
            "other".to_string()
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            rel,
            format!(
                "{desc} mode={mode:o} owner={}:{} nlink-dir={}",
                m.uid(),
                m.gid(),
                ft.is_dir()
            ),
        );
        if ft.is_dir() {
            tree_walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// One canned answer of the hostile registry.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Announce this Content-Length instead of the body's (then close early).
    pub declared_len: Option<usize>,
}

impl Canned {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Canned {
            status: 200,
            content_type: content_type.into(),
            body,
            declared_len: None,
        }
    }
}

/// A minimal HTTP/1.1 server on loopback answering canned responses by path, counting
/// requests per path.
pub struct FakeRegistry {
    pub port: u16,
    pub routes: Arc<Mutex<HashMap<String, Canned>>>,
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let routes: Arc<Mutex<HashMap<String, Canned>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, h, s) = (routes.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (r, h) = (r.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(match conn.try_clone() {
                        Ok(c) => c,
                        Err(_) => return,
                    });
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    loop {
                        let mut l = String::new();
                        if reader.read_line(&mut l).is_err() || l == "\r\n" || l.is_empty() {
                            break;
                        }
                    }
                    *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let canned = r.lock().unwrap().get(&path).cloned().unwrap_or(Canned {
                        status: 404,
                        content_type: "application/json".into(),
                        body: br#"{"errors":[{"code":"NOT_FOUND","message":"no route"}]}"#.to_vec(),
                        declared_len: None,
                    });
                    let len = canned.declared_len.unwrap_or(canned.body.len());
                    let head = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n\r\n",
                        canned.status, canned.content_type, len
                    );
                    let _ = conn.write_all(head.as_bytes());
                    if method != "HEAD" {
                        let _ = conn.write_all(&canned.body);
                    }
                    let _ = conn.flush();
                    let mut sink = [0u8; 16];
                    let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(10)));
                    let _ = conn.read(&mut sink);
                });
            }
        });
        Ok(FakeRegistry {
            port,
            routes,
            hits,
            stop,
        })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn route(&self, path: &str, c: Canned) {
        self.routes.lock().unwrap().insert(path.to_string(), c);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Serves an image (layers given as gzip blobs with their tar digests) under
    /// `repo:tag`; returns the blob paths of the layers.
    pub fn serve_image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[(Vec<u8>, String)],
        declared: Option<Vec<(String, u64)>>,
    ) -> Vec<String> {
        let diff_ids: Vec<&String> = layers.iter().map(|l| &l.1).collect();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let cd = berth_snapshotter::Digest::of(&config);
        let mut paths = Vec::new();
        let mut descs = Vec::new();
        for (i, (blob, _)) in layers.iter().enumerate() {
            let (d, size) = match &declared {
                Some(v) => (v[i].0.clone(), v[i].1),
                None => (
                    berth_snapshotter::Digest::of(blob).to_string(),
                    blob.len() as u64,
                ),
            };
            let p = format!("/v2/{repo}/blobs/{d}");
            self.route(&p, Canned::ok("application/octet-stream", blob.clone()));
            paths.push(p);
            descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size}));
        }
        self.route(
            &format!("/v2/{repo}/blobs/{cd}"),
            Canned::ok("application/octet-stream", config.clone()),
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": descs,
        });
        self.route(
            &format!("/v2/{repo}/manifests/{tag}"),
            Canned::ok(
                "application/vnd.oci.image.manifest.v1+json",
                serde_json::to_vec(&manifest).unwrap(),
            ),
        );
        paths
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A gzip layer from `(name, kind, link, data)` entries written with raw names; returns
/// (blob, diff_id).
pub fn raw_layer(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> (Vec<u8>, String) {
    let mut tar = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let diff = berth_snapshotter::Digest::of(&tar).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff)
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}
