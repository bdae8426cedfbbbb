//! `ADD http(s)://…`: each URL downloaded into a directory of its own before the step's
//! cache key is made (the key holds the downloaded content's checksum, so a changed
//! file runs the step again and an unchanged one is a cache hit), as Docker does: the
//! file named by the URL path's last segment, mode 0600, its mtime the response's
//! `Last-Modified` when there is one; `--checksum=sha256:…` verified. The directory
//! goes when the step ends (it is under `<root>/uploads/build-downloads`, which the
//! engine empties when it opens, so nothing outlives a berthd that died meanwhile).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

/// Whether an ADD source is a URL berth fetches.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The downloaded files of one ADD; removed on drop.
pub struct Fetched {
    pub dir: PathBuf,
    /// The files' names in `dir`, in the order of the sources.
    pub names: Vec<String>,
}

impl Drop for Fetched {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The file name Docker takes from a URL: its path's last segment.
fn file_name(url: &reqwest::Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?.to_string();
    (!last.is_empty() && last != "." && last != "..").then_some(last)
}

/// `Last-Modified` (RFC 7231's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u32
        + 1;
    let rfc3339 = format!("{year}-{month:02}-{:02}T{time}Z", day.parse::<u32>().ok()?);
    humantime::parse_rfc3339(&rfc3339).ok()
}

/// Downloads `urls` into a new directory under `parent`; `checksum`
/// (`sha256:<hex>`) is checked against a single URL's content.
pub async fn fetch(
    parent: &Path,
    urls: &[String],
    dest: &str,
    checksum: Option<&str>,
) -> Result<Fetched, String> {
    let want = match checksum {
        None => None,
        Some(c) => match c.split_once(':') {
            Some(("sha256", hex))
                if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(format!("sha256:{}", hex.to_ascii_lowercase()))
            }
            _ => {
                return Err(format!(
                    "invalid checksum digest {c:?}: berth verifies sha256:<64 hex digits>"
                ))
            }
        },
    };
    if want.is_some() && urls.len() != 1 {
        return Err("ADD --checksum needs exactly one source".into());
    }
    std::fs::create_dir_all(parent).map_err(|e| format!("a directory for ADD downloads: {e}"))?;
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!("{nonce:x}-{}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("a directory for ADD downloads: {e}"))?;
    let mut fetched = Fetched {
        dir,
        names: Vec::new(),
    };
    // No proxy from berthd's environment: the URL is fetched from where it names.
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("an HTTP client: {e}"))?;
    for raw in urls {
        let url = reqwest::Url::parse(raw).map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
        let name = match file_name(&url) {
            Some(n) => n,
            None if dest.ends_with('/') => {
                return Err(format!("cannot determine filename from url: {raw}"))
            }
            None => "__unnamed__".to_string(),
        };
        if fetched.names.contains(&name) {
            return Err(format!("ADD: two URLs name the file {name}"));
        }
        let mut resp = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("failed to GET {raw}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("failed to GET {raw} with status {}", resp.status()));
        }
        let modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(http_date);
        let path = fetched.dir.join(&name);
        let io = |e: std::io::Error| format!("downloading {raw}: {e}");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let mut hash = Sha256::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("downloading {raw}: {e}"))?
        {
            hash.update(&chunk);
            f.write_all(&chunk).map_err(io)?;
        }
        let got = format!("sha256:{:x}", hash.finalize());
        if let Some(want) = &want {
            if *want != got {
                return Err(format!(
                    "digest mismatch for {raw}: expected {want}, got {got}"
                ));
            }
        }
        if let Some(t) = modified {
            f.set_modified(t).map_err(io)?;
        }
        fetched.names.push(name);
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        let u = reqwest::Url::parse("http://127.0.0.1:1/a/b/file.tar.gz?x=1").unwrap();
        assert_eq!(file_name(&u).as_deref(), Some("file.tar.gz"));
        let u = reqwest::Url::parse("http://127.0.0.1:1/a/").unwrap();
        assert_eq!(file_name(&u), None);
        let t = http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 784111777);
        assert!(http_date("yesterday").is_none());
    }
}
