//! containerd's shim v2 command line: flags, the `start` bootstrap (one shim per group,
//! prints the socket address, detaches) and the socket naming.

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// The annotation naming a container's pod sandbox (CRI).
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// containerd's explicit shim grouping annotation.
pub const GROUP_ANNOTATION: &str = "io.containerd.runc.v2.group";
/// The environment variable telling the serving shim which fd is its listener.
pub const LISTEN_FD_ENV: &str = "BERTH_SHIM_LISTEN_FD";
/// Where shim sockets live (short enough for sun_path).
pub const SOCKET_DIR: &str = "/run/berth/s";

/// Errors of the command line and bootstrap.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("unknown flag {0}")]
    UnknownFlag(String),
    #[error("flag -{0} is required")]
    Required(&'static str),
    #[error("{step}: {source}")]
    Io {
        step: String,
        source: std::io::Error,
    },
}

fn io(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let step = step.into();
    move |source| BootstrapError::Io { step, source }
}

/// The flags containerd passes to a shim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub namespace: String,
    pub address: String,
    pub publish_binary: String,
    pub id: String,
    pub bundle: String,
    pub debug: bool,
    pub version: bool,
    /// `start`, `delete`, or empty (serve).
    pub action: String,
}

/// Parses Go-style flags (`-name value`, `--name=value`) and the action word.
pub fn parse_flags<I: IntoIterator<Item = String>>(args: I) -> Result<Flags, BootstrapError> {
    let mut flags = Flags::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(stripped) = arg.strip_prefix('-') else {
            flags.action = arg;
            continue;
        };
        let stripped = stripped.strip_prefix('-').unwrap_or(stripped);
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (stripped.to_string(), None),
        };
        match name.as_str() {
            "debug" => flags.debug = inline.is_none_or(|v| v != "false"),
            "v" | "version" => flags.version = true,
            "namespace" | "address" | "publish-binary" | "id" | "bundle" | "socket" => {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| BootstrapError::MissingValue(arg.clone()))?,
                };
                match name.as_str() {
                    "namespace" => flags.namespace = value,
                    "address" => flags.address = value,
                    "publish-binary" => flags.publish_binary = value,
                    "id" => flags.id = value,
                    "bundle" => flags.bundle = value,
                    _ => {}
                }
            }
            _ => return Err(BootstrapError::UnknownFlag(arg)),
        }
    }
    Ok(flags)
}

/// The grouping id: the pod sandbox (or explicit group) a container belongs to, or the
/// container itself.
pub fn group_id(bundle: &Path, id: &str) -> String {
    let Ok(text) = std::fs::read(bundle.join("config.json")) else {
        return id.to_string();
    };
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return id.to_string();
    };
    let ann = &spec["annotations"];
    for key in [GROUP_ANNOTATION, SANDBOX_ID_ANNOTATION] {
        if let Some(g) = ann[key].as_str().filter(|g| !g.is_empty()) {
            return g.to_string();
        }
    }
    id.to_string()
}

/// The socket path of the shim serving `group` for containerd `address` in `namespace`.
pub fn socket_path(address: &str, namespace: &str, group: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(address.as_bytes());
    h.update([0]);
    h.update(namespace.as_bytes());
    h.update([0]);
    h.update(group.as_bytes());
    Path::new(SOCKET_DIR).join(hex::encode(&h.finalize()[..20]))
}

/// `start`: reuse the group's running shim, or start a detached one; prints the
/// address (`unix://…`) on stdout.
pub fn start(flags: &Flags) -> Result<(), BootstrapError> {
    if flags.id.is_empty() {
        return Err(BootstrapError::Required("id"));
    }
    let bundle = std::env::current_dir().map_err(io("reading the bundle directory"))?;
    let group = group_id(&bundle, &flags.id);
    let path = socket_path(&flags.address, &flags.namespace, &group);
    let address = format!("unix://{}", path.display());
    if UnixStream::connect(&path).is_ok() {
        write_address(&bundle, &address)?;
        println!("{address}");
        return Ok(());
    }
    std::fs::create_dir_all(SOCKET_DIR).map_err(io(format!("creating {SOCKET_DIR}")))?;
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io(format!("binding {}", path.display())))?;
    let exe = std::env::current_exe().map_err(io("locating the shim binary"))?;
    let mut cmd = Command::new(exe);
    // Keep the name containerd ran us by (`containerd-shim-berth-v1`) for ps.
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    cmd.args(["-namespace", &flags.namespace, "-address", &flags.address]);
    cmd.args(["-publish-binary", &flags.publish_binary, "-id", &flags.id]);
    if flags.debug {
        cmd.arg("-debug");
    }
    cmd.env(LISTEN_FD_ENV, "3")
        .current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(shim_log(&bundle));
    let fd: RawFd = listener.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls: setsid, dup2, fcntl.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    if let Err(e) = spawned {
        let _ = std::fs::remove_file(&path);
        return Err(io("starting the shim")(e));
    }
    write_address(&bundle, &address)?;
    println!("{address}");
    std::io::stdout()
        .flush()
        .map_err(io("printing the address"))?;
    Ok(())
}

/// containerd reads a shim's logs from the `log` FIFO in the bundle, when present.
fn shim_log(bundle: &Path) -> Stdio {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(bundle.join("log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn write_address(bundle: &Path, address: &str) -> Result<(), BootstrapError> {
    let tmp = bundle.join(".address.tmp");
    std::fs::write(&tmp, address).map_err(io("writing the address file"))?;
    std::fs::rename(&tmp, bundle.join("address")).map_err(io("writing the address file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_containerd_flags() {
        let f = parse_flags(args(
            "-namespace default -address /run/c.sock -publish-binary /usr/bin/containerd -id c1 -debug start",
        ))
        .unwrap();
        assert_eq!(f.namespace, "default");
        assert_eq!(f.address, "/run/c.sock");
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.action, "start");
        let f = parse_flags(args("--id=x --bundle=/b delete")).unwrap();
        assert_eq!(
            (f.id.as_str(), f.bundle.as_str(), f.action.as_str()),
            ("x", "/b", "delete")
        );
        assert!(parse_flags(args("-id")).is_err());
        assert!(parse_flags(args("-bogus 1")).is_err());
    }

    #[test]
    fn groups_by_sandbox_annotation() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(group_id(dir.path(), "c1"), "c1");
        std::fs::write(
            dir.path().join("config.json"),
            format!(r#"{{"annotations":{{"{SANDBOX_ID_ANNOTATION}":"pod1"}}}}"#),
        )
        .unwrap();
        assert_eq!(group_id(dir.path(), "c1"), "pod1");
        let a = socket_path("/a", "ns", "pod1");
        assert_eq!(a, socket_path("/a", "ns", "pod1"));
        assert_ne!(a, socket_path("/a", "ns", "pod2"));
        assert_ne!(a, socket_path("/b", "ns", "pod1"));
        assert!(a.as_os_str().len() < 100);
    }
}
