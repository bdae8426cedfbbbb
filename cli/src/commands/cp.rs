//! `berth cp`: files between a container and the host, with docker cp's path rules:
//! `CONTAINER:SRC DEST` and `SRC CONTAINER:DEST`, `-` for a tar on stdin/stdout, a
//! directory copied into an existing directory or to a new name, a path ending in
//! `/.` for a directory's contents, `-L` to follow a source link, `-a` to keep (or,
//! into a container, set to the container user's) ownership.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use berth_snapshotter::writers::{Limits, WriteJob, Writers};
use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::cp_xattrs;
use super::image_http::{check, q, send, send_body, Call, ChannelBody};
use super::Output;

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    pub src: String,
    pub dest: String,
}

/// `CONTAINER:PATH` or a local path (one starting with `/` or `.`, or with no `:`).
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

pub async fn run(host: &str, args: &CpArgs) -> Result<Output> {
    match (split_arg(&args.src), split_arg(&args.dest)) {
        ((Some(_), _), (Some(_), _)) => bail!("copying between containers is not supported"),
        ((None, _), (None, _)) => bail!("must specify at least one container source"),
        ((Some(c), src), (None, dst)) => from_container(host, args, c, src, dst).await?,
        ((None, src), (Some(c), dst)) => to_container(host, args, src, c, dst).await?,
    }
    Ok(Output::text(String::new()))
}

struct Stat {
    is_dir: bool,
    is_link: bool,
    link_target: String,
}

/// `HEAD …/archive?path=`: `None` when the path is not there.
async fn stat(host: &str, container: &str, path: &str) -> Result<Option<Stat>> {
    let resp = send(
        host,
        Call {
            method: Method::HEAD,
            path: format!("/containers/{}/archive?path={}", q(container), q(path)),
            headers: vec![],
            body: None,
        },
    )
    .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        // The container itself, or the path in it?
        let c = send(
            host,
            Call {
                method: Method::GET,
                path: format!("/containers/{}/json", q(container)),
                headers: vec![],
                body: None,
            },
        )
        .await?;
        check(c).await?;
        return Ok(None);
    }
    let resp = check(resp).await?;
    parse_stat(resp.headers()).map(Some)
}

fn parse_stat(headers: &hyper::HeaderMap) -> Result<Stat> {
    let raw = headers
        .get("x-docker-container-path-stat")
        .context("the daemon sent no X-Docker-Container-Path-Stat header")?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .context("bad X-Docker-Container-Path-Stat header")?;
    let v: Value =
        serde_json::from_slice(&json).context("bad X-Docker-Container-Path-Stat header")?;
    let mode = v["mode"].as_u64().unwrap_or(0);
    Ok(Stat {
        is_dir: mode & (1 << 31) != 0,
        is_link: mode & (1 << 27) != 0,
        link_target: v["linkTarget"].as_str().unwrap_or("").to_string(),
    })
}

/// Go's `filepath.Base`.
fn base(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn contents_of(path: &str) -> bool {
    path.ends_with("/.") || path == "."
}

async fn from_container(host: &str, args: &CpArgs, c: &str, src: &str, dst: &str) -> Result<()> {
    let not_found = || anyhow::anyhow!("Error: No such container:path: {c}:{src}");
    let st = stat(host, c, src).await?.ok_or_else(not_found)?;
    let (mut path, mut rebase) = (src.to_string(), None);
    if args.follow_link && st.is_link && !st.link_target.is_empty() {
        path = st.link_target.clone();
        rebase = Some(base(src));
    }
    let resp = send(
        host,
        Call {
            method: Method::GET,
            path: format!("/containers/{}/archive?path={}", q(c), q(&path)),
            headers: vec![],
            body: None,
        },
    )
    .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(not_found());
    }
    let resp = check(resp).await?;
    let got = parse_stat(resp.headers())?;
    let mut body = resp.into_body();
    if dst == "-" {
        let mut out = std::io::stdout().lock();
        while let Some(frame) = body.frame().await {
            if let Some(d) = frame?.data_ref() {
                out.write_all(d)?;
            }
        }
        out.flush()?;
        return Ok(());
    }
    // Where the entries go and what their first element becomes.
    let src_base = if contents_of(&path) {
        ".".to_string()
    } else {
        base(&path)
    };
    let dst_path = Path::new(dst);
    let (into, rename) = match std::fs::metadata(dst_path) {
        Ok(m) if m.is_dir() => (
            dst_path.to_path_buf(),
            rebase.map(|r| (src_base.clone(), r)),
        ),
        Ok(_) if got.is_dir => bail!("cannot copy directory to file: {dst}"),
        Ok(_) => (parent(dst_path), Some((src_base.clone(), base(dst)))),
        Err(_) => {
            if dst.ends_with('/') && !got.is_dir {
                bail!("destination directory {dst:?} must exist");
            }
            let p = parent(dst_path);
            if !p.is_dir() {
                bail!("stat {}: no such file or directory", p.display());
            }
            (p, Some((src_base.clone(), base(dst))))
        }
    };
    // The body is unpacked as it arrives, on a blocking thread fed through a
    // bounded channel (the tar crate reads synchronously).
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let keep_owner = args.archive;
    let unpacker = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            chunk: Bytes::new(),
        };
        unpack(reader, &into, rename, keep_owner)
    });
    // The body's frames are small (what one socket read gave): they are gathered
    // into chunks of FEED bytes, so the unpacking thread is woken once per chunk,
    // not once per frame (each wake-up is a trip through a busy scheduler).
    const FEED: usize = 1 << 20;
    let mut feed_err = None;
    let mut gathered = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    gathered.extend_from_slice(&d);
                    if gathered.len() >= FEED && tx.send(gathered.split().freeze()).await.is_err() {
                        break;
                    }
                }
            }
            Some(Err(e)) => {
                feed_err = Some(e);
                break;
            }
            None => {
                if !gathered.is_empty() {
                    let _ = tx.send(gathered.split().freeze()).await;
                }
                break;
            }
        }
    }
    drop(tx);
    unpacker.await.context("unpacking")??;
    if let Some(e) = feed_err {
        return Err(e).context("reading the archive from the daemon");
    }
    Ok(())
}

/// A blocking reader over the chunks of a response body.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Renames an entry whose first element is `old` to start with `new` instead.
fn rebased(name: &[u8], old: &str, new: &str) -> Option<Vec<u8>> {
    let name = if let Some(rest) = name.strip_prefix(b"./") {
        if old == "." {
            let mut v = new.as_bytes().to_vec();
            v.push(b'/');
            v.extend_from_slice(rest);
            return Some(v);
        }
        rest
    } else {
        name
    };
    let o = old.as_bytes();
    if name == o || name.strip_suffix(b"/") == Some(o) {
        let mut v = new.as_bytes().to_vec();
        if name.ends_with(b"/") {
            v.push(b'/');
        }
        return Some(v);
    }
    if name.len() > o.len() && name.starts_with(o) && name[o.len()] == b'/' {
        let mut v = new.as_bytes().to_vec();
        v.extend_from_slice(&name[o.len()..]);
        return Some(v);
    }
    None
}

fn unpack(
    file: impl std::io::Read,
    into: &Path,
    rename: Option<(String, String)>,
    keep_owner: bool,
) -> Result<()> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    // The tap under the reader finds each entry's extended attributes.
    let tap = berth_snapshotter::xattrs::XattrTap::new(file);
    let found = tap.found();
    let mut ar = tar::Archive::new(tap);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(keep_owner);
    ar.set_overwrite(true);
    let place = |name: Vec<u8>| -> Result<PathBuf> {
        let name = match &rename {
            Some((old, new)) => rebased(&name, old, new).unwrap_or(name),
            None => name,
        };
        let rel = Path::new(std::ffi::OsStr::from_bytes(&name));
        if rel.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        }) {
            bail!(
                "refusing archive entry {:?}: it leaves the destination",
                rel.display().to_string()
            );
        }
        // Components only: no trailing `/` (an lstat of `file/` fails) nor `./`.
        Ok(into.join(rel.components().collect::<PathBuf>()))
    };
    // Regular files are written by a pool of threads (file creation is where the
    // time goes: the filesystem's inode allocation, not the data); this thread
    // reads the tar, makes directories and links, and hands each file's data over.
    // Directories' times are set at the end (writing their children changes them).
    let mut pool = writer_pool(keep_owner);
    let mut buf = vec![0u8; COPY_BUF];
    let mut dir_times = Vec::new();
    let res = (|| -> Result<()> {
        for entry in ar.entries()? {
            let mut entry = entry?;
            let dest = place(entry.path_bytes().into_owned())?;
            let kind = entry.header().entry_type();
            let xattrs: Vec<_> =
                berth_snapshotter::xattrs::take(&found, entry.raw_header_position())
                    .into_iter()
                    .filter(|(n, _)| berth_snapshotter::xattrs::carried(n.as_bytes()))
                    .collect();
            // A name a pending file has, or an entry that changes what later names
            // mean (links), waits until every handed-over file is written.
            if pool.pending(&dest)
                || !matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory)
            {
                pool.drain()?;
            }
            if kind == tar::EntryType::Regular {
                let size = entry.header().size().unwrap_or(0);
                if size <= POOL_MAX_FILE {
                    let mut data = Vec::with_capacity(size as usize);
                    entry
                        .read_to_end(&mut data)
                        .with_context(|| format!("reading {} from the archive", dest.display()))?;
                    let h = entry.header();
                    pool.submit(FileJob {
                        dest,
                        data,
                        mode: h.mode().unwrap_or(0o644) & 0o7777,
                        mtime: h.mtime().unwrap_or(0),
                        uid: h.uid().unwrap_or(0) as u32,
                        gid: h.gid().unwrap_or(0) as u32,
                        xattrs,
                    })?;
                    continue;
                }
                // Created with O_EXCL first: a name already there (the usual case is
                // none) is replaced and the creation tried once more.
                let res = match write_file(&mut entry, &dest, keep_owner, &xattrs, &mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        replace(&dest, kind)?;
                        write_file(&mut entry, &dest, keep_owner, &xattrs, &mut buf)
                    }
                    r => r,
                };
                res.with_context(|| format!("extracting {}", dest.display()))?;
                continue;
            }
            replace(&dest, kind)?;
            if kind == tar::EntryType::Link {
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let from = place(link)?;
                std::fs::hard_link(&from, &dest)
                    .with_context(|| format!("link {}", dest.display()))?;
                continue;
            }
            if kind == tar::EntryType::Directory {
                if let Ok(mtime) = entry.header().mtime() {
                    dir_times.push((dest.clone(), mtime));
                }
            }
            entry
                .unpack(&dest)
                .with_context(|| format!("extracting {}", dest.display()))?;
            if kind == tar::EntryType::Directory {
                cp_xattrs::set(&dest, &xattrs)?;
            }
        }
        Ok(())
    })();
    let written = pool.finish();
    res?;
    written?;
    // Deepest first, so setting a parent's times comes after its children's.
    for (dir, mtime) in dir_times.iter().rev() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime);
        let times = std::fs::FileTimes::new().set_modified(t).set_accessed(t);
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.set_times(times);
        }
    }
    Ok(())
}

/// Files up to this size go to the writer pool with their data in memory; larger
/// ones are written by the reading thread as they stream.
const POOL_MAX_FILE: u64 = 8 << 20;

/// The writer pool's bounds (`berth_snapshotter::writers`: each directory's files go
/// to one writer, in the tar's order). Files queued per writer: enough for the
/// reading thread to run ahead through a directory of small files into the next; file
/// data handed over and not written yet: 64 MiB at most.
const POOL_LIMITS: Limits = Limits {
    threads: 4,
    queue: 4096,
    budget: 64 << 20,
};

struct FileJob {
    dest: PathBuf,
    data: Vec<u8>,
    mode: u32,
    mtime: u64,
    uid: u32,
    gid: u32,
    /// `user.*` and `security.capability` attributes, set after the data (a
    /// write clears file capabilities) and the owner.
    xattrs: Vec<(String, Vec<u8>)>,
}

impl WriteJob for FileJob {
    fn path(&self) -> &Path {
        &self.dest
    }

    fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// The writers of one `cp` out: `-a` keeps the archive's owners.
fn writer_pool(keep_owner: bool) -> Writers<FileJob, anyhow::Error> {
    Writers::start(
        "cp-writer",
        POOL_LIMITS,
        move |job: &FileJob| {
            write_job(job, keep_owner).with_context(|| format!("extracting {}", job.dest.display()))
        },
        |m| anyhow::anyhow!(m),
    )
}

/// One file of the pool: created with O_EXCL (a name already there is replaced and
/// the creation tried once more), its data in one write, then mode, owner (with
/// `-a`) and mtime on the open fd.
fn write_job(job: &FileJob, keep_owner: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&job.dest)
    };
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            replace(&job.dest, tar::EntryType::Regular).map_err(std::io::Error::other)?;
            open()?
        }
        r => r?,
    };
    f.write_all(&job.data)?;
    if keep_owner {
        std::os::unix::fs::fchown(&f, Some(job.uid), Some(job.gid))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(job.mode))?;
    cp_xattrs::set(&job.dest, &job.xattrs)?;
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(job.mtime))?;
    Ok(())
}

/// Removes what is at `dest` unless it is a directory and the entry one too
/// (then the entry's files go into it, as docker cp does).
fn replace(dest: &Path, kind: tar::EntryType) -> Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(dest) {
        if !(m.is_dir() && kind == tar::EntryType::Directory) {
            if m.is_dir() {
                std::fs::remove_dir_all(dest)
            } else {
                std::fs::remove_file(dest)
            }
            .with_context(|| format!("replacing {}", dest.display()))?;
        }
    }
    Ok(())
}

/// File data is copied in reads and writes of up to this much (the tar crate
/// copies 8 KiB at a time).
const COPY_BUF: usize = 1 << 20;

/// A regular file's data copied in large writes, then its mode, owner (with
/// `-a`) and mtime, all on the open fd. `AlreadyExists` when `dest` is taken.
fn write_file(
    entry: &mut tar::Entry<impl std::io::Read>,
    dest: &Path,
    keep_owner: bool,
    xattrs: &[(String, Vec<u8>)],
    buf: &mut [u8],
) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let h = entry.header();
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    let mtime = h.mtime().unwrap_or(0);
    let (uid, gid) = (h.uid().unwrap_or(0), h.gid().unwrap_or(0));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)?;
    loop {
        // Fill the buffer as far as the entry goes, then one write.
        let mut n = 0;
        while n < buf.len() {
            match entry.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            break;
        }
        f.write_all(&buf[..n])?;
        if n < buf.len() {
            break;
        }
    }
    if keep_owner {
        std::os::unix::fs::fchown(&f, Some(uid as u32), Some(gid as u32))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    cp_xattrs::set(dest, xattrs)?;
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))?;
    Ok(())
}

async fn to_container(host: &str, args: &CpArgs, src: &str, c: &str, dst: &str) -> Result<()> {
    let mut dst_path = dst.to_string();
    let mut st = stat(host, c, &dst_path).await?;
    if let Some(s) = st.as_ref().filter(|s| s.is_link) {
        let target = if s.link_target.starts_with('/') {
            s.link_target.clone()
        } else {
            format!("{}/{}", parent_str(dst), s.link_target)
        };
        dst_path = target;
        st = stat(host, c, &dst_path).await?;
    }
    let dst_is_dir = st.as_ref().is_some_and(|s| s.is_dir);
    // The tar is made on a blocking thread and sent as it is made, in chunks
    // through a bounded channel: nothing holds the whole archive.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let (put_path, producer) = if src == "-" {
        if !dst_is_dir {
            bail!("destination \"{c}:{dst}\" must be a directory");
        }
        let producer = tokio::task::spawn_blocking(move || -> Result<()> {
            let mut w = ChunkWriter::new(tx);
            let r = std::io::copy(&mut std::io::stdin().lock(), &mut w);
            w.finish(r.map(drop).context("reading stdin"))
        });
        (dst_path, producer)
    } else {
        let mut local = PathBuf::from(src);
        if args.follow_link {
            local = std::fs::canonicalize(&local).with_context(|| format!("stat {src}"))?;
        }
        let meta = std::fs::symlink_metadata(&local)
            .map_err(|_| anyhow::anyhow!("stat {src}: no such file or directory"))?;
        let contents = contents_of(src);
        let (put_path, prefix) = match &st {
            Some(_) if dst_is_dir => (
                dst_path.clone(),
                if contents { String::new() } else { base(src) },
            ),
            Some(_) if meta.is_dir() => bail!("cannot copy directory"),
            Some(_) => (parent_str(&dst_path), base(&dst_path)),
            None => {
                if dst_path.ends_with('/') && !meta.is_dir() {
                    bail!("no such directory: {c}:{dst}");
                }
                (parent_str(&dst_path), base(&dst_path))
            }
        };
        let producer = tokio::task::spawn_blocking(move || -> Result<()> {
            let mut w = ChunkWriter::new(tx);
            let r = build_tar(&local, &prefix, &mut w);
            w.finish(r.with_context(|| format!("archiving {}", local.display())))
        });
        (put_path, producer)
    };
    let mut path = format!(
        "/containers/{}/archive?path={}&noOverwriteDirNonDir=true",
        q(c),
        q(&put_path)
    );
    if args.archive {
        path.push_str("&copyUIDGID=true");
    }
    let resp = send_body(
        host,
        Call {
            method: Method::PUT,
            path,
            headers: vec![("content-type", "application/x-tar".into())],
            body: None,
        },
        ChannelBody(rx),
    )
    .await;
    // The daemon's refusal is the error to show when it answered one (it may have
    // stopped reading early, which ends the producer); otherwise a local failure
    // (an unreadable file), which cut the request short.
    let produced = producer.await.context("archiving")?;
    match resp {
        Ok(r) if !r.status().is_success() => {
            check(r).await?;
        }
        Ok(r) => {
            produced?;
            check(r).await?;
        }
        Err(e) => {
            produced?;
            return Err(e);
        }
    }
    Ok(())
}

/// Sends what is written to it in chunks of [`CHUNK`] through a channel; a send
/// fails when the request is gone (the daemon answered early, with an error).
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 512 << 10;

impl ChunkWriter {
    fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the daemon stopped reading the archive",
            )
        })
    }

    /// Sends the rest, or, when making the archive failed, an error that aborts
    /// the request (so the daemon never takes a cut archive for a whole one). A
    /// daemon that stopped reading is not an error here: its answer says why.
    fn finish(mut self, made: Result<()>) -> Result<()> {
        match made {
            Ok(()) => {
                let _ = self.send();
                Ok(())
            }
            Err(e) => {
                let _ = self
                    .tx
                    .blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
                Err(e)
            }
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn parent_str(path: &str) -> String {
    let t = path.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((p, _)) => p.into(),
        None => ".".into(),
    }
}

/// A tar of `src` whose entries start with `prefix` (`prefix/…`), or of its
/// children at the top when `prefix` is empty; links are archived as links, a file
/// linked more than once as a hard link after its first name, and files' and
/// directories' `user.*` and `security.capability` attributes as PAX records.
fn build_tar(src: &Path, prefix: &str, out: impl Write) -> Result<()> {
    let mut t = TarWalk {
        b: tar::Builder::new(out),
        links: std::collections::HashMap::new(),
    };
    t.b.follow_symlinks(false);
    t.b.mode(tar::HeaderMode::Complete);
    let meta = std::fs::symlink_metadata(src)?;
    if meta.is_dir() && prefix.is_empty() {
        for e in std::fs::read_dir(src)? {
            let e = e?;
            t.add(&e.path(), Path::new(&e.file_name()))?;
        }
    } else {
        t.add(src, Path::new(prefix))?;
    }
    t.b.finish()?;
    Ok(())
}

struct TarWalk<W: Write> {
    b: tar::Builder<W>,
    /// (dev, ino) of files with more than one link → the name archived first.
    links: std::collections::HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TarWalk<W> {
    fn add(&mut self, path: &Path, name: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
        if !meta.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                let first = first.clone();
                self.b.append_link(&mut h, name, first)?;
                return Ok(());
            }
            self.links.insert(key, name.to_path_buf());
        }
        if meta.is_dir() || meta.is_file() {
            let x = cp_xattrs::pax_of(path).with_context(|| format!("{}", path.display()))?;
            if !x.is_empty() {
                self.b
                    .append_pax_extensions(x.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
            }
        }
        self.b.append_path_with_name(path, name)?;
        if meta.is_dir() {
            for e in std::fs::read_dir(path)? {
                let e = e?;
                self.add(&e.path(), &name.join(e.file_name()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_as_docker_cp() {
        assert_eq!(split_arg("c1:/etc"), (Some("c1"), "/etc"));
        assert_eq!(split_arg("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_arg("./c1:x"), (None, "./c1:x"));
        assert_eq!(split_arg("file"), (None, "file"));
        assert_eq!(split_arg("-"), (None, "-"));
    }

    /// A tar as the daemon sends one, unpacked through the writer pool: files (many,
    /// some large enough to stream), their modes and mtimes, a symlink, a hard link
    /// to a file handed to the pool just before, a name given twice (the last wins)
    /// and a file replaced by a directory.
    #[test]
    fn unpack_writes_every_entry_in_order() -> Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mut b = tar::Builder::new(Vec::new());
        let mut add =
            |kind: tar::EntryType, name: &str, mode: u32, data: &[u8], link: Option<&str>| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(kind);
                h.set_mode(mode);
                h.set_mtime(1_000_000 + mode as u64);
                h.set_size(data.len() as u64);
                if let Some(l) = link {
                    h.set_link_name(l).unwrap();
                }
                h.set_path(name).unwrap();
                h.set_cksum();
                b.append(&h, data).unwrap();
            };
        add(tar::EntryType::Directory, "tree/", 0o750, b"", None);
        add(tar::EntryType::Directory, "tree/small/", 0o755, b"", None);
        for i in 0..300 {
            let body = format!("file {i}");
            add(
                tar::EntryType::Regular,
                &format!("tree/small/s{i}"),
                0o600 + (i % 8) as u32,
                body.as_bytes(),
                None,
            );
        }
        let big = vec![7u8; (POOL_MAX_FILE + 4096) as usize];
        add(tar::EntryType::Regular, "tree/big", 0o640, &big, None);
        add(tar::EntryType::Regular, "tree/dup", 0o644, b"first", None);
        add(tar::EntryType::Regular, "tree/dup", 0o644, b"second", None);
        add(
            tar::EntryType::Regular,
            "tree/target",
            0o604,
            b"linked",
            None,
        );
        add(
            tar::EntryType::Link,
            "tree/hard",
            0o604,
            b"",
            Some("tree/target"),
        );
        add(
            tar::EntryType::Symlink,
            "tree/sym",
            0o777,
            b"",
            Some("small/s1"),
        );
        add(
            tar::EntryType::Regular,
            "tree/becomes-dir",
            0o644,
            b"x",
            None,
        );
        add(
            tar::EntryType::Directory,
            "tree/becomes-dir/",
            0o700,
            b"",
            None,
        );
        let data = b.into_inner()?;
        let tmp = tempfile::tempdir()?;
        unpack(
            data.as_slice(),
            tmp.path(),
            Some(("tree".into(), "copy".into())),
            false,
        )?;
        let root = tmp.path().join("copy");
        for i in 0..300 {
            let p = root.join(format!("small/s{i}"));
            assert_eq!(std::fs::read_to_string(&p)?, format!("file {i}"));
            let m = std::fs::metadata(&p)?;
            assert_eq!(m.permissions().mode() & 0o7777, 0o600 + (i % 8) as u32);
            assert_eq!(m.mtime(), 1_000_000 + 0o600 + (i % 8) as i64);
        }
        assert_eq!(std::fs::read(root.join("big"))?, big);
        assert_eq!(std::fs::read_to_string(root.join("dup"))?, "second");
        assert_eq!(std::fs::read_to_string(root.join("hard"))?, "linked");
        assert_eq!(
            std::fs::metadata(root.join("hard"))?.ino(),
            std::fs::metadata(root.join("target"))?.ino()
        );
        assert_eq!(
            std::fs::read_link(root.join("sym"))?,
            PathBuf::from("small/s1")
        );
        assert!(std::fs::symlink_metadata(root.join("becomes-dir"))?.is_dir());
        let top = std::fs::metadata(&root)?;
        assert_eq!(
            (top.permissions().mode() & 0o7777, top.mtime()),
            (0o750, 1_000_000 + 0o750)
        );
        Ok(())
    }

    #[test]
    fn entries_rebase_on_their_first_element() {
        assert_eq!(rebased(b"dir/", "dir", "new").unwrap(), b"new/");
        assert_eq!(rebased(b"dir/a/b", "dir", "new").unwrap(), b"new/a/b");
        assert!(rebased(b"dirx/a", "dir", "new").is_none());
        assert_eq!(rebased(b"./a.txt", ".", "new").unwrap(), b"new/a.txt");
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(parent_str("/a"), "/");
        assert_eq!(parent_str("/a/b/"), "/a");
    }
}
