//! `ImageFsInfo`: bytes and inodes used under the snapshot directory.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;

use crate::{Cri, CriError};

pub(super) async fn image_fs_info(
    cri: &Cri,
    _req: cri::ImageFsInfoRequest,
) -> Result<cri::ImageFsInfoResponse, CriError> {
    let dir = cri.inner.images.root.join("snapshots");
    let walk_dir = dir.clone();
    let (bytes, inodes) = tokio::task::spawn_blocking(move || usage(&walk_dir))
        .await
        .map_err(|e| CriError::Internal(format!("image fs usage task: {e}")))??;
    let usage = cri::FilesystemUsage {
        timestamp: crate::sandbox::run::now_nanos(),
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: dir.display().to_string(),
        }),
        used_bytes: Some(cri::UInt64Value { value: bytes }),
        inodes_used: Some(cri::UInt64Value { value: inodes }),
    };
    Ok(cri::ImageFsInfoResponse {
        image_filesystems: vec![usage.clone()],
        container_filesystems: vec![usage],
    })
}

/// Allocated bytes and distinct inodes under `root`, not following symlinks or crossing
/// into other filesystems (mounted container roots).
fn usage(root: &Path) -> Result<(u64, u64), CriError> {
    let top = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(CriError::io("stat", root)(e)),
    };
    let mut seen = HashSet::new();
    let mut bytes = 0u64;
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    seen.insert(top.ino());
    bytes += top.blocks() * 512;
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // Snapshots come and go while we walk.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CriError::io("read dir", &dir)(e)),
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.dev() != top.dev() || !seen.insert(m.ino()) {
                continue;
            }
            bytes += m.blocks() * 512;
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok((bytes, seen.len() as u64))
}
