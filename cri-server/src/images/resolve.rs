//! Finding an image the way Docker does: by id (`sha256:<hex>`, the bare hex, or a unique
//! prefix of at least 12 hex digits), by name (`busybox` = `docker.io/library/busybox:latest`),
//! or by digest (`name@sha256:…` matches any record of that repository with that manifest).

use berth_image::{ImageRecord, Reference};

use crate::{Cri, CriError};

/// The image id and every record naming it, or `None` when nothing matches.
pub(super) fn resolve(
    cri: &Cri,
    reference: &str,
) -> Result<Option<(String, Vec<ImageRecord>)>, CriError> {
    let all = super::by_id(cri)?;
    if let Some(hex) = id_hex(reference) {
        let hits: Vec<_> = all
            .iter()
            .filter(|(id, _)| id.trim_start_matches("sha256:").starts_with(hex))
            .collect();
        match hits.len() {
            1 => {
                return Ok(hits
                    .into_iter()
                    .next()
                    .map(|(id, recs)| (id.clone(), recs.clone())))
            }
            0 if hex.len() == 64 || reference.starts_with("sha256:") => return Ok(None),
            0 => {}
            _ => {
                return Err(CriError::InvalidArgument(format!(
                    "image id prefix {reference:?} is ambiguous"
                )))
            }
        }
    }
    let r = Reference::parse(reference)
        .map_err(|e| CriError::InvalidArgument(format!("image reference {reference:?}: {e}")))?;
    let repo = r.name();
    for (id, records) in &all {
        let hit = match &r.digest {
            Some(d) => records
                .iter()
                .any(|rec| split_name(&rec.name).0 == repo && rec.manifest_digest == *d),
            None => records.iter().any(|rec| rec.name == r.to_string()),
        };
        if hit {
            return Ok(Some((id.clone(), records.clone())));
        }
    }
    Ok(None)
}

/// The hex part of something that may be an image id.
fn id_hex(s: &str) -> Option<&str> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    let ok = hex.len() >= 12
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// `registry/repo:tag` → (`registry/repo`, true); `registry/repo@sha256:…` → (…, false).
pub(super) fn split_name(name: &str) -> (&str, bool) {
    if let Some((repo, _)) = name.split_once('@') {
        let repo = match repo.rfind(':') {
            Some(i) if !repo[i..].contains('/') => &repo[..i],
            _ => repo,
        };
        return (repo, false);
    }
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], true),
        _ => (name, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(
            split_name("127.0.0.1:5000/a/b:v1"),
            ("127.0.0.1:5000/a/b", true)
        );
        assert_eq!(
            split_name("127.0.0.1:5000/a/b@sha256:00"),
            ("127.0.0.1:5000/a/b", false)
        );
        assert_eq!(
            split_name("docker.io/library/busybox:1@sha256:00"),
            ("docker.io/library/busybox", false)
        );
        assert_eq!(id_hex("sha256:0123456789ab"), Some("0123456789ab"));
        assert_eq!(id_hex("busybox"), None);
        assert_eq!(id_hex("abc"), None);
    }
}
