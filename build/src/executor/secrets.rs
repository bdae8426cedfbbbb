//! `RUN --mount=type=secret`: the build's secrets (`berth build --secret`) shown to one
//! RUN step only. A file secret is written into a private directory under
//! `<root>/uploads/build-secrets` (0700, root's) for the step, bound read-only at its
//! target and removed when the step ends (the engine empties `<root>/uploads` when it
//! opens, so a berthd that died during the step leaves nothing after its next start);
//! an `env=` secret goes into that step's process
//! environment. Neither is part of the step's cache key (as in BuildKit, a changed
//! secret does not run the step again), of its layer (the bind's source is outside the
//! container's root filesystem) or of its history line (the instruction's text).

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::dockerfile::mounts::RunMount;

/// What one secret mount gives the step.
pub struct Given {
    /// The file to bind (read-only) and where.
    pub file: Option<(PathBuf, String)>,
    /// An environment variable for the step.
    pub env: Option<String>,
}

/// The secret files of one RUN step; removed on drop.
pub struct StepSecrets {
    dir: Option<PathBuf>,
    parent: PathBuf,
}

impl StepSecrets {
    /// Secrets under `<uploads>/build-secrets`, `uploads` being the engine's directory
    /// emptied at each start (`Images::uploads`).
    pub fn new(uploads: &Path) -> StepSecrets {
        StepSecrets {
            dir: None,
            parent: uploads.join("build-secrets"),
        }
    }

    fn dir(&mut self) -> Result<PathBuf, String> {
        if let Some(d) = &self.dir {
            return Ok(d.clone());
        }
        std::fs::create_dir_all(&self.parent)
            .and_then(|_| {
                std::fs::set_permissions(&self.parent, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| format!("a directory for build secrets: {e}"))?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for i in 0..100u32 {
            let d = self
                .parent
                .join(format!("{:x}-{}-{i}", nonce, std::process::id()));
            match std::fs::create_dir(&d) {
                Ok(()) => {
                    self.dir = Some(d.clone());
                    return Ok(d);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("a directory for build secrets: {e}")),
            }
        }
        Err("a directory for build secrets: no free name".into())
    }

    /// The secret a mount names, as a file and/or an environment variable; `None`
    /// when it is absent and not `required` (BuildKit then mounts nothing).
    pub fn give(
        &mut self,
        m: &RunMount,
        secrets: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Option<Given>, String> {
        // BuildKit: the id defaults to the target's base name; the target to
        // /run/secrets/<id>; with env= and no target only the variable is set.
        let id = match (&m.id, &m.target) {
            (Some(id), _) => id.clone(),
            (None, Some(t)) => t.rsplit('/').next().unwrap_or(t).to_string(),
            (None, None) if m.env.is_some() => m.env.clone().unwrap_or_default(),
            (None, None) => {
                return Err("RUN --mount=type=secret needs an id or a target".into());
            }
        };
        let Some(content) = secrets.get(&id) else {
            if m.required {
                return Err(format!(
                    "secret {id} not found (berth build --secret id={id},src=PATH passes one; the classic builder protocol the docker CLI speaks has none)"
                ));
            }
            return Ok(None);
        };
        let env = match &m.env {
            Some(var) => {
                let text = std::str::from_utf8(content)
                    .map_err(|_| format!("secret {id}: env={var} needs UTF-8 content"))?;
                if text.contains('\0') {
                    return Err(format!("secret {id}: env={var} cannot hold a NUL byte"));
                }
                Some(format!("{var}={text}"))
            }
            None => None,
        };
        let target = match (&m.target, &m.env) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(format!("/run/secrets/{id}")),
        };
        let file = match target {
            None => None,
            Some(t) => {
                let dir = self.dir()?;
                // One file per mount (two mounts may show one secret differently).
                let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
                let path = dir.join(format!("s{n}"));
                let fail = |e: std::io::Error| format!("secret {id}: {e}");
                {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(fail)?;
                    f.write_all(content).map_err(fail)?;
                }
                std::os::unix::fs::chown(&path, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))
                    .map_err(fail)?;
                std::fs::set_permissions(
                    &path,
                    std::fs::Permissions::from_mode(m.mode.unwrap_or(0o400)),
                )
                .map_err(fail)?;
                Some((path, t))
            }
        };
        Ok(Some(Given { file, env }))
    }
}

impl Drop for StepSecrets {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                tracing::warn!("removing the build secrets {}: {e}", d.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::mounts::parse_mount;

    fn secrets() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([("tok".to_string(), b"s3cret".to_vec())])
    }

    #[test]
    fn file_at_default_target_then_removed() {
        let root = tempfile::tempdir().unwrap();
        let mut s = StepSecrets::new(root.path());
        let m = parse_mount("type=secret,id=tok,mode=0440").unwrap();
        let g = s.give(&m, &secrets()).unwrap().unwrap();
        let (path, target) = g.file.unwrap();
        assert_eq!(target, "/run/secrets/tok");
        assert_eq!(std::fs::read(&path).unwrap(), b"s3cret");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o440);
        assert!(g.env.is_none());
        drop(s);
        assert!(!path.exists());
    }

    #[test]
    fn env_only_and_id_from_target() {
        let root = tempfile::tempdir().unwrap();
        let mut s = StepSecrets::new(root.path());
        let m = parse_mount("type=secret,id=tok,env=TOKEN").unwrap();
        let g = s.give(&m, &secrets()).unwrap().unwrap();
        assert!(g.file.is_none());
        assert_eq!(g.env.as_deref(), Some("TOKEN=s3cret"));
        let m = parse_mount("type=secret,target=/etc/tok").unwrap();
        let g = s.give(&m, &secrets()).unwrap().unwrap();
        assert_eq!(g.file.unwrap().1, "/etc/tok");
    }

    #[test]
    fn absent_and_required() {
        let root = tempfile::tempdir().unwrap();
        let mut s = StepSecrets::new(root.path());
        let m = parse_mount("type=secret,id=other").unwrap();
        assert!(s.give(&m, &secrets()).unwrap().is_none());
        let m = parse_mount("type=secret,id=other,required").unwrap();
        let e = s.give(&m, &secrets()).err().unwrap();
        assert!(e.starts_with("secret other not found"), "{e}");
    }
}
