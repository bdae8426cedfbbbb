//! IPC and UTS namespaces of a pod, created and pinned by berth (no pause process).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_cni::Netns;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::EngineError;

use super::io_err;

/// A namespace pinned on a file: the same bind-mount-on-a-file scheme as the network
/// namespace, so [`Netns::remove`] (unmount + unlink, idempotent) removes it too.
pub fn remove_pin(path: &Path) -> Result<(), EngineError> {
    Netns::at(path)
        .remove()
        .map_err(EngineError::internal("pod namespace"))
}

/// The file a namespace is bind-mounted on (and its directory).
fn create_pin_file(pin: &Path) -> Result<(), EngineError> {
    if let Some(parent) = pin.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create namespace dir", parent))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o444)
        .open(pin)
        .map_err(io_err("create namespace pin", pin))?;
    Ok(())
}

/// Pins the namespace file `src` (`/proc/<pid>/ns/<kind>`) at `pin` (a bind mount on a
/// new file). On failure nothing stays behind.
pub fn pin_path(src: &Path, pin: &Path) -> Result<(), EngineError> {
    create_pin_file(pin)?;
    if let Err(e) = mount(Some(src), pin, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
        let _ = std::fs::remove_file(pin);
        return Err(EngineError::broken(
            "pod",
            format!("pin {} at {}: {e}", src.display(), pin.display()),
        ));
    }
    Ok(())
}

/// Creates the namespaces `flags` (IPC and/or UTS) on a short-lived thread, sets the
/// hostname in a new UTS namespace, and pins each at `<dir>/<kind>/<id>`.
/// Returns the pins (ipc, uts). On failure nothing stays behind.
pub fn pin_ipc_uts(
    dir: &Path,
    id: &str,
    ipc: bool,
    uts_hostname: Option<&str>,
) -> Result<(Option<PathBuf>, Option<PathBuf>), EngineError> {
    let mut wanted: Vec<(&'static str, PathBuf)> = Vec::new();
    let mut flags = CloneFlags::empty();
    if ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
        wanted.push(("ipc", dir.join("ipc").join(id)));
    }
    if uts_hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
        wanted.push(("uts", dir.join("uts").join(id)));
    }
    if wanted.is_empty() {
        return Ok((None, None));
    }
    for (_, pin) in &wanted {
        create_pin_file(pin)?;
    }
    let hostname = uts_hostname.map(str::to_owned);
    let pins = wanted.clone();
    let result = std::thread::scope(|s| {
        s.spawn(move || -> Result<(), EngineError> {
            unshare(flags).map_err(|e| {
                EngineError::broken("pod", format!("unshare ipc/uts namespaces: {e}"))
            })?;
            if let Some(h) = &hostname {
                nix::unistd::sethostname(h)
                    .map_err(|e| EngineError::broken("pod", format!("set hostname {h:?}: {e}")))?;
            }
            for (kind, pin) in &pins {
                let src = format!("/proc/thread-self/ns/{kind}");
                mount(
                    Some(src.as_str()),
                    pin,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| {
                    EngineError::broken(
                        "pod",
                        format!("pin {kind} namespace at {}: {e}", pin.display()),
                    )
                })?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(EngineError::broken("pod", "namespace thread panicked")))
    });
    if let Err(e) = result {
        for (_, pin) in &wanted {
            let _ = remove_pin(pin);
        }
        return Err(e);
    }
    let find = |k: &str| {
        wanted
            .iter()
            .find(|(kind, _)| *kind == k)
            .map(|(_, p)| p.clone())
    };
    Ok((find("ipc"), find("uts")))
}
