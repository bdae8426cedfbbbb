//! Files in and out of a container (`docker cp`, the archive endpoints): a path's
//! stat, a tar of a path, a tar extracted into a directory.
//!
//! Every path is resolved inside the container's root with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so a symlink, however it is swapped, can only lead to
//! another place inside the root; files are then read and written with `*at` calls
//! on one name relative to a directory fd, with `O_NOFOLLOW`. The work happens on a
//! thread with a private mount namespace holding the container's filesystem as
//! dockerd shows it ([`view`]), under the container's lifecycle lock.

mod export;
mod fsutil;
mod pool;
mod tar_in;
mod tar_out;
mod user;
mod view;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use berth_snapshotter::changes::{Change, ChangeKind};
pub use export::{changes, export};
pub use tar_in::ExtractOptions;

use crate::{Engine, EngineError};

/// Why an archive operation failed; the front door maps these to dockerd's answers.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The path is not in the container (dockerd: 404).
    #[error("Could not find the file {path} in container {container}")]
    NotFound { path: String, container: String },
    /// `PUT` to a path that is not a directory (dockerd: 400).
    #[error("extraction point is not a directory")]
    NotDirectory,
    /// Writing to a read-only root or volume (dockerd: 403).
    #[error("{0}")]
    ReadOnly(&'static str),
    /// A bad upload: an entry leaving the target, a conflict (dockerd: 400).
    #[error("{0}")]
    Invalid(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl ArchiveError {
    fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            op,
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// A path's stat as dockerd sends it in `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    /// RFC 3339 with nanoseconds.
    pub mtime: String,
    /// For a symlink: the path it resolves to inside the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` from a `st_mode`.
pub fn go_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR,
        libc::S_IFIFO => PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= STICKY;
    }
    m
}

/// A requested path split as dockerd splits it: the directory (every link in it
/// followed) and the last element (not followed; empty or `.` for "the directory
/// itself", i.e. a path ending in `/` or `/.`).
#[derive(Debug, PartialEq)]
pub(crate) struct Split {
    pub dir: PathBuf,
    pub base: String,
    /// The name the archive's entries start with (Go's `filepath.Base`).
    pub rebase: String,
}

pub(crate) fn split(path: &str) -> Split {
    let abs = format!("/{path}");
    let mut parts: Vec<&str> = Vec::new();
    for c in abs.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let follow_last = path.ends_with('/') || path.ends_with("/.") || path == ".";
    let dot = path.ends_with("/.") || path == ".";
    if follow_last || parts.is_empty() {
        let rebase = if dot || parts.is_empty() {
            ".".to_string()
        } else {
            parts.last().map(|s| s.to_string()).unwrap_or_default()
        };
        return Split {
            dir: parts.iter().collect::<PathBuf>(),
            base: String::new(),
            rebase,
        };
    }
    let base = parts.pop().unwrap_or_default().to_string();
    Split {
        dir: parts.iter().collect(),
        rebase: base.clone(),
        base,
    }
}

/// The object a path names: a directory reached by following links, or one entry
/// of a directory, not followed.
pub(crate) enum Target {
    Itself(OwnedFd),
    Entry {
        parent: OwnedFd,
        name: std::ffi::CString,
    },
}

impl Target {
    fn lstat(&self) -> std::io::Result<libc::stat> {
        match self {
            Target::Itself(fd) => fsutil::fstat(fd.as_fd()),
            Target::Entry { parent, name } => fsutil::lstat_at(parent.as_fd(), name),
        }
    }
}

fn resolve(
    view: &view::View,
    split: &Split,
    container: &str,
    path: &str,
) -> Result<Target, ArchiveError> {
    let not_found = || ArchiveError::NotFound {
        path: path.to_string(),
        container: container.to_string(),
    };
    let map = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) => not_found(),
        _ => ArchiveError::io("resolve", path, e),
    };
    let dir = fsutil::open_in_root(view.root(), &split.dir, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(map)?;
    if split.base.is_empty() {
        return Ok(Target::Itself(dir));
    }
    let name =
        fsutil::cstring(split.base.as_bytes()).map_err(|e| ArchiveError::io("resolve", path, e))?;
    let target = Target::Entry { parent: dir, name };
    target.lstat().map_err(map)?;
    Ok(target)
}

fn stat_of(
    view: &view::View,
    split: &Split,
    target: &Target,
    path: &str,
) -> Result<PathStat, ArchiveError> {
    let st = target
        .lstat()
        .map_err(|e| ArchiveError::io("stat", path, e))?;
    let mut link_target = String::new();
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        let full = split.dir.join(&split.base);
        if let Ok(fd) = fsutil::open_in_root(view.root(), &full, libc::O_PATH) {
            if let Some(p) = view.container_path(fd.as_fd()) {
                link_target = p.display().to_string();
            }
        }
    }
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(
            st.st_mtime.max(0) as u64,
            st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
        );
    let name = if split.rebase == "."
        && split.dir.as_os_str().is_empty()
        && split.base.is_empty()
        && !path.ends_with('.')
    {
        "/".to_string()
    } else {
        split.rebase.clone()
    };
    Ok(PathStat {
        name,
        size: st.st_size,
        mode: go_mode(st.st_mode),
        mtime: humantime::format_rfc3339_nanos(mtime).to_string(),
        link_target,
    })
}

struct Prepared {
    id: String,
    name: String,
    spec: view::ViewSpec,
    user: String,
    guard: tokio::sync::OwnedMutexGuard<()>,
}

async fn prepare(engine: &Arc<Engine>, reference: &str) -> Result<Prepared, ArchiveError> {
    let record = crate::find(engine, reference)?;
    let guard = engine.lock(&record.id).await;
    let record = crate::get(engine, &record.id)?;
    // Used only when the rootfs is not mounted already (a stopped container).
    let mounts = engine
        .images
        .snapshots
        .mounts(&record.snapshot)
        .map_err(|e| ArchiveError::Internal(format!("container {}: {e}", record.id)))?;
    let spec = view::ViewSpec::read(&engine.dir(&record.id), mounts)?;
    Ok(Prepared {
        id: record.id,
        name: record.name,
        spec,
        user: record.user,
        guard,
    })
}

async fn on_view<T: Send + 'static>(
    p: Prepared,
    f: impl FnOnce(&view::View, &str) -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = p.name.clone();
    let guard = p.guard;
    let _ = p.id;
    let handle = view::run(p.spec, move |v| f(v, &name));
    std::thread::spawn(move || {
        let r = handle
            .join()
            .unwrap_or_else(|_| Err(ArchiveError::Internal("the cp thread panicked".into())));
        let _ = tx.send(r);
    });
    let r = rx
        .await
        .unwrap_or_else(|_| Err(ArchiveError::Internal("the cp thread went away".into())));
    drop(guard);
    r
}

/// `HEAD /containers/{id}/archive?path=`: the stat of `path` in the container.
pub async fn stat_path(
    engine: &Arc<Engine>,
    reference: &str,
    path: &str,
) -> Result<PathStat, ArchiveError> {
    let p = prepare(engine, reference).await?;
    let path = path.to_string();
    on_view(p, move |view, container| {
        let split = split(&path);
        let target = resolve(view, &split, container, &path)?;
        stat_of(view, &split, &target, &path)
    })
    .await
}

/// `GET /containers/{id}/archive?path=`: resolves `path`, hands its stat to `begin`
/// (which answers the client and returns where the tar goes), then writes the tar.
/// Errors after `begin` are logged: the client has its status line already.
pub async fn read_archive<W, B>(
    engine: &Arc<Engine>,
    reference: &str,
    path: &str,
    begin: B,
) -> Result<PathStat, ArchiveError>
where
    W: Write + Send + 'static,
    B: FnOnce(&PathStat) -> W + Send + 'static,
{
    let p = prepare(engine, reference).await?;
    let path = path.to_string();
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
    let done = on_view(p, move |view, container| {
        let split = split(&path);
        let target = resolve(view, &split, container, &path)?;
        let stat = stat_of(view, &split, &target, &path)?;
        let out = begin(&stat);
        let _ = stat_tx.send(stat);
        tar_out::write(view, target, &split.rebase, out)
            .map_err(|e| ArchiveError::io("archive", &path, e))
    });
    let task = tokio::spawn(done);
    match stat_rx.await {
        Ok(stat) => {
            tokio::spawn(async move {
                if let Ok(Err(e)) = task.await {
                    tracing::warn!("archive of a container path failed while streaming: {e}");
                }
            });
            Ok(stat)
        }
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(ArchiveError::Internal(
                "archive ended without a stat".into(),
            )),
            Err(e) => Err(ArchiveError::Internal(format!("archive task: {e}"))),
        },
    }
}

/// `PUT /containers/{id}/archive?path=`: extracts the tar read from `input` into
/// the directory `path`.
pub async fn extract(
    engine: &Arc<Engine>,
    reference: &str,
    path: &str,
    input: Box<dyn Read + Send>,
    opts: ExtractOptions,
) -> Result<(), ArchiveError> {
    let p = prepare(engine, reference).await?;
    let user = p.user.clone();
    let path = path.to_string();
    on_view(p, move |view, container| {
        let split = split(&format!("{path}/"));
        let dir =
            fsutil::open_in_root(view.root(), &split.dir, libc::O_PATH).map_err(|e| {
                match e.raw_os_error() {
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) => {
                        ArchiveError::NotFound {
                            path: path.clone(),
                            container: container.to_string(),
                        }
                    }
                    _ => ArchiveError::io("resolve", &path, e),
                }
            })?;
        let st = fsutil::fstat(dir.as_fd()).map_err(|e| ArchiveError::io("stat", &path, e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(ArchiveError::NotDirectory);
        }
        tar_in::extract(view, dir, &path, &user, input, opts)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_as_dockerd() {
        let s = split("/etc/passwd");
        assert_eq!(
            (s.dir, s.base.as_str(), s.rebase.as_str()),
            (PathBuf::from("etc"), "passwd", "passwd")
        );
        let s = split("/a/link/");
        assert_eq!(
            (s.dir, s.base.as_str(), s.rebase.as_str()),
            (PathBuf::from("a/link"), "", "link")
        );
        let s = split("/a/dir/.");
        assert_eq!(
            (s.dir, s.base.as_str(), s.rebase.as_str()),
            (PathBuf::from("a/dir"), "", ".")
        );
        let s = split("/../../x");
        assert_eq!((s.dir, s.base.as_str()), (PathBuf::new(), "x"));
        let s = split("/");
        assert_eq!((s.dir, s.base.as_str()), (PathBuf::new(), ""));
    }

    #[test]
    fn modes_are_go_file_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
    }
}
