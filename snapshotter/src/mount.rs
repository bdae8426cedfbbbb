//! Mount descriptions returned by the snapshotter, and performing them.
//!
//! Overlay's legacy mount data is limited to one page (4096 bytes), which a long
//! `lowerdir=` list of an image with many layers overflows. [`Mount::mount`] therefore
//! uses the new mount API (`fsopen` + `fsconfig("lowerdir+")` per layer, Linux ≥ 6.8),
//! which has no such limit, and falls back to `mount(2)` on older kernels.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Errors while mounting or unmounting, naming the target and step.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {kind} on {target}: {step}: {source}")]
    Sys {
        kind: String,
        target: String,
        step: String,
        source: io::Error,
    },
    #[error("mount {kind} on {target}: options are {len} bytes, over the one-page limit of mount(2), and this kernel lacks fsconfig lowerdir+")]
    TooLong {
        kind: String,
        target: String,
        len: usize,
    },
    #[error("mount on {target}: a path contains a NUL byte")]
    Nul { target: String },
    #[error("mount type {0:?} is not supported")]
    Type(String),
}

/// A mount, described as containerd does: `overlay` with `lowerdir=`/`upperdir=`/
/// `workdir=` options, or `bind` with `rbind`/`ro`/`rw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

impl Mount {
    /// The lower directories of an overlay mount, top first.
    pub fn lowerdirs(&self) -> Vec<&str> {
        self.options
            .iter()
            .filter_map(|o| o.strip_prefix("lowerdir="))
            .flat_map(|l| l.split(':'))
            .collect()
    }

    /// The value of option `key` (`upperdir`, `workdir`, …).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find_map(|o| o.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }

    /// Mounts this on `target` (an existing directory).
    pub fn mount(&self, target: &Path) -> Result<(), MountError> {
        match self.kind.as_str() {
            "overlay" => self.mount_overlay(target),
            "bind" => self.mount_bind(target),
            other => Err(MountError::Type(other.to_string())),
        }
    }

    fn err(&self, target: &Path, step: &str, source: io::Error) -> MountError {
        MountError::Sys {
            kind: self.kind.clone(),
            target: target.display().to_string(),
            step: step.to_string(),
            source,
        }
    }

    fn mount_bind(&self, target: &Path) -> Result<(), MountError> {
        let src = cstr(self.source.as_bytes(), target)?;
        let tgt = cstr(target.as_os_str().as_bytes(), target)?;
        // SAFETY: valid C strings; null fstype/data are allowed for bind mounts.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(self.err(target, "bind", io::Error::last_os_error()));
        }
        if self.options.iter().any(|o| o == "ro") {
            // SAFETY: as above; remounting the bind we just made read-only.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    tgt.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                let e = io::Error::last_os_error();
                let _ = unmount(target);
                return Err(self.err(target, "remount read-only", e));
            }
        }
        Ok(())
    }

    fn mount_overlay(&self, target: &Path) -> Result<(), MountError> {
        match self.mount_overlay_fsconfig(target) {
            Ok(()) => Ok(()),
            Err(FsconfigError::Unsupported) => self.mount_overlay_legacy(target),
            Err(FsconfigError::Failed(e)) => Err(e),
        }
    }

    fn mount_overlay_legacy(&self, target: &Path) -> Result<(), MountError> {
        let data = self.options.join(",");
        if data.len() >= 4096 {
            return Err(MountError::TooLong {
                kind: self.kind.clone(),
                target: target.display().to_string(),
                len: data.len(),
            });
        }
        let src = cstr(b"overlay", target)?;
        let tgt = cstr(target.as_os_str().as_bytes(), target)?;
        let data = cstr(data.as_bytes(), target)?;
        // SAFETY: valid C strings; data is a NUL-terminated option string.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                src.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(self.err(target, "mount(2) overlay", io::Error::last_os_error()));
        }
        Ok(())
    }

    fn mount_overlay_fsconfig(&self, target: &Path) -> Result<(), FsconfigError> {
        const FSOPEN_CLOEXEC: libc::c_uint = 1;
        const FSCONFIG_SET_FLAG: libc::c_uint = 0;
        const FSCONFIG_SET_STRING: libc::c_uint = 1;
        const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
        const FSMOUNT_CLOEXEC: libc::c_uint = 1;
        const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

        let fstype = cstr(b"overlay", target)?;
        // SAFETY: fstype is a valid C string; fsopen returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
        if fd < 0 {
            return Err(FsconfigError::Unsupported);
        }
        // SAFETY: fd is a freshly returned, owned file descriptor.
        let fs = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let set = |key: &str, value: Option<&str>| -> Result<(), io::Error> {
            let k = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let v = match value {
                Some(v) => Some(
                    CString::new(v).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
                ),
                None => None,
            };
            let (cmd, vptr) = match &v {
                Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
                None => (FSCONFIG_SET_FLAG, std::ptr::null()),
            };
            // SAFETY: fs is a valid fs context fd; key/value are valid C strings or null.
            let rc = unsafe {
                libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, k.as_ptr(), vptr, 0)
            };
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let lowers = self.lowerdirs();
        for (i, lower) in lowers.iter().enumerate() {
            if let Err(e) = set("lowerdir+", Some(lower)) {
                if i == 0 && e.raw_os_error() == Some(libc::EINVAL) {
                    // Kernel before 6.8: no lowerdir+.
                    return Err(FsconfigError::Unsupported);
                }
                return Err(FsconfigError::Failed(self.err(
                    target,
                    &format!("fsconfig lowerdir+ {lower}"),
                    e,
                )));
            }
        }
        for opt in &self.options {
            if opt.starts_with("lowerdir=") {
                continue;
            }
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            };
            set(k, v).map_err(|e| {
                FsconfigError::Failed(self.err(target, &format!("fsconfig {opt}"), e))
            })?;
        }
        let empty = cstr(b"", target)?;
        // SAFETY: fs is a valid fs context; CMD_CREATE takes no key or value.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        if rc < 0 {
            return Err(FsconfigError::Failed(self.err(
                target,
                "fsconfig create overlay",
                io::Error::last_os_error(),
            )));
        }
        // SAFETY: fs is a created fs context; fsmount returns a new mount fd or -1.
        let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
        if mfd < 0 {
            return Err(FsconfigError::Failed(self.err(
                target,
                "fsmount",
                io::Error::last_os_error(),
            )));
        }
        // SAFETY: mfd is a freshly returned, owned file descriptor.
        let mnt = unsafe { OwnedFd::from_raw_fd(mfd as i32) };
        let tgt = cstr(target.as_os_str().as_bytes(), target)?;
        // SAFETY: mnt is a detached mount fd, empty is "", tgt a valid path.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                tgt.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if rc < 0 {
            return Err(FsconfigError::Failed(self.err(
                target,
                "move_mount",
                io::Error::last_os_error(),
            )));
        }
        Ok(())
    }
}

enum FsconfigError {
    Unsupported,
    Failed(MountError),
}

impl From<MountError> for FsconfigError {
    fn from(e: MountError) -> Self {
        FsconfigError::Failed(e)
    }
}

fn cstr(bytes: &[u8], target: &Path) -> Result<CString, MountError> {
    CString::new(bytes).map_err(|_| MountError::Nul {
        target: target.display().to_string(),
    })
}

/// Unmounts `target`.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    let tgt = cstr(target.as_os_str().as_bytes(), target)?;
    // SAFETY: tgt is a valid C string.
    let rc = unsafe { libc::umount2(tgt.as_ptr(), 0) };
    if rc != 0 {
        return Err(MountError::Sys {
            kind: "umount".into(),
            target: target.display().to_string(),
            step: "umount2".into(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}
