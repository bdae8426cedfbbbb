//! Where and how the shim writes a container's log: the format (CRI or Docker's
//! json-file), the path, and the rotation (`max-size`, `max-file`, `compress`, as
//! Docker's json-file driver names them). The engine sends it as a stdout/stderr URI
//! (`crilog://<path>?…` or `jsonlog://<path>?…`) and reads the files back with the
//! names [`rotated`] gives.

use std::path::{Path, PathBuf};

/// The scheme of a log in the CRI format.
pub const CRI_SCHEME: &str = "crilog://";
/// The scheme of a log in Docker's json-file format.
pub const JSON_SCHEME: &str = "jsonlog://";

/// A log file's record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `<RFC3339Nano> <stdout|stderr> <P|F> <content>`.
    #[default]
    Cri,
    /// `{"log":"…","stream":"stdout","time":"…"}`, Docker's json-file.
    JsonFile,
}

/// When and how a log is rotated. `max_size: None` never rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write when the file holds at least this many bytes.
    pub max_size: Option<u64>,
    /// Files kept, the one written included (at least 1: then the file is replaced).
    pub max_files: u32,
    /// Rotated files are gzip-compressed (`<path>.N.gz`).
    pub compress: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: None,
            max_files: 1,
            compress: false,
        }
    }
}

/// A log the shim writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub format: LogFormat,
    pub path: PathBuf,
    pub rotation: Rotation,
}

impl LogTarget {
    /// The URI the engine passes as a process's stdout and stderr. The options always
    /// follow the last `?`, so a path holding one stays whole.
    pub fn to_uri(&self) -> String {
        let scheme = match self.format {
            LogFormat::Cri => CRI_SCHEME,
            LogFormat::JsonFile => JSON_SCHEME,
        };
        let mut opts = Vec::new();
        if let Some(size) = self.rotation.max_size {
            opts.push(format!("max-size={size}"));
        }
        if self.rotation.max_files != 1 {
            opts.push(format!("max-file={}", self.rotation.max_files));
        }
        if self.rotation.compress {
            opts.push("compress=true".to_string());
        }
        format!("{scheme}{}?{}", self.path.display(), opts.join("&"))
    }

    /// Reads a URI made by [`LogTarget::to_uri`] (or a bare `crilog://<path>`); `None`
    /// when it is no log URI; an error names a bad option.
    pub fn parse(uri: &str) -> Option<Result<LogTarget, String>> {
        let (format, rest) = if let Some(rest) = uri.strip_prefix(CRI_SCHEME) {
            (LogFormat::Cri, rest)
        } else if let Some(rest) = uri.strip_prefix(JSON_SCHEME) {
            (LogFormat::JsonFile, rest)
        } else {
            return None;
        };
        let (path, query) = rest.rsplit_once('?').unwrap_or((rest, ""));
        Some(parse_rotation(query, uri).map(|rotation| LogTarget {
            format,
            path: PathBuf::from(path),
            rotation,
        }))
    }
}

fn parse_rotation(query: &str, uri: &str) -> Result<Rotation, String> {
    let mut rotation = Rotation::default();
    for opt in query.split('&').filter(|o| !o.is_empty()) {
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        let bad = || format!("log option {key}={value:?} in {uri}");
        match key {
            "max-size" => {
                rotation.max_size = Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?)
            }
            "max-file" => {
                rotation.max_files = value.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?
            }
            "compress" => rotation.compress = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown log option {key:?} in {uri}")),
        }
    }
    Ok(rotation)
}

/// The `n`th rotated file of the log at `path` (1 is the newest), plain or
/// compressed, as Docker names them.
pub fn rotated(path: &Path, n: u32, compressed: bool) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    if compressed {
        name.push(".gz");
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        let t = LogTarget {
            format: LogFormat::JsonFile,
            path: PathBuf::from("/var/lib/berth/containers/a?b/a-json.log"),
            rotation: Rotation {
                max_size: Some(10240),
                max_files: 3,
                compress: true,
            },
        };
        let uri = t.to_uri();
        assert_eq!(
            uri,
            "jsonlog:///var/lib/berth/containers/a?b/a-json.log?max-size=10240&max-file=3&compress=true"
        );
        assert_eq!(LogTarget::parse(&uri), Some(Ok(t)));
        // What older engines sent: a bare CRI path.
        let bare = LogTarget::parse("crilog:///x/c.log");
        assert_eq!(
            bare,
            Some(Ok(LogTarget {
                format: LogFormat::Cri,
                path: PathBuf::from("/x/c.log"),
                rotation: Rotation::default(),
            }))
        );
        assert_eq!(LogTarget::parse("/a/fifo"), None);
        assert!(matches!(
            LogTarget::parse("jsonlog:///x?max-file=0"),
            Some(Err(_))
        ));
        assert!(matches!(
            LogTarget::parse("jsonlog:///x?colour=red"),
            Some(Err(_))
        ));
    }

    #[test]
    fn rotated_names_are_dockers() {
        let p = Path::new("/c/id-json.log");
        assert_eq!(rotated(p, 1, false), Path::new("/c/id-json.log.1"));
        assert_eq!(rotated(p, 2, true), Path::new("/c/id-json.log.2.gz"));
    }
}
