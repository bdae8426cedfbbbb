//! The pod's /etc/hostname, /etc/resolv.conf and /etc/hosts, bound into its containers.

use std::fmt::Write as _;
use std::path::Path;

use crate::EngineError;

use super::{io_err, Dns};

pub const HOSTNAME: &str = "hostname";
pub const RESOLV_CONF: &str = "resolv.conf";
pub const HOSTS: &str = "hosts";
/// The pod's /dev/shm: one tmpfs its containers share, as they share its IPC namespace.
pub const SHM: &str = "shm";
/// Docker's and containerd's /dev/shm size.
const SHM_SIZE: &str = "size=65536k";

/// Mounts the pod's shared /dev/shm tmpfs at `<dir>/shm`.
pub fn mount_shm(dir: &Path) -> Result<(), EngineError> {
    use nix::mount::{mount, MsFlags};
    let target = dir.join(SHM);
    std::fs::create_dir_all(&target).map_err(io_err("create", &target))?;
    mount(
        Some("shm"),
        &target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,{SHM_SIZE}").as_str()),
    )
    .map_err(|e| {
        EngineError::broken(
            "pod",
            format!("mounting the pod's /dev/shm at {}: {e}", target.display()),
        )
    })
}

/// Unmounts the pod's /dev/shm (lazily: a container still holding it keeps its view).
/// Not mounted is fine.
pub fn unmount_shm(dir: &Path) -> Result<(), EngineError> {
    use nix::mount::{umount2, MntFlags};
    let target = dir.join(SHM);
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(EngineError::broken(
            "pod",
            format!("unmounting the pod's /dev/shm at {}: {e}", target.display()),
        )),
    }
}

/// resolv.conf from the pod's DNS config, or the host's when the pod gives none.
pub fn resolv_conf(dns: Option<&Dns>) -> Result<String, EngineError> {
    let Some(dns) =
        dns.filter(|d| !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()))
    else {
        return std::fs::read_to_string("/etc/resolv.conf").or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(String::new())
            } else {
                Err(io_err("read", "/etc/resolv.conf")(e))
            }
        });
    };
    let mut out = String::new();
    for field in dns.servers.iter().chain(&dns.searches).chain(&dns.options) {
        if field.contains(['\n', '\r']) || field.trim().is_empty() {
            return Err(EngineError::Invalid(format!(
                "DNS config entry {field:?} is empty or spans lines"
            )));
        }
    }
    if !dns.searches.is_empty() {
        let _ = writeln!(out, "search {}", dns.searches.join(" "));
    }
    for s in &dns.servers {
        let _ = writeln!(out, "nameserver {s}");
    }
    if !dns.options.is_empty() {
        let _ = writeln!(out, "options {}", dns.options.join(" "));
    }
    Ok(out)
}

/// /etc/hosts: localhost entries and the pod's own addresses under its hostname.
pub fn hosts(hostname: &str, ips: &[String]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for ip in ips {
        let _ = writeln!(out, "{ip}\t{hostname}");
    }
    out
}

pub fn write(dir: &Path, name: &str, content: &str) -> Result<(), EngineError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() -> Result<(), EngineError> {
        let dns = Dns {
            servers: vec!["10.96.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(Some(&dns))?,
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        let bad = Dns {
            servers: vec!["1.1.1.1\nnameserver 6.6.6.6".into()],
            ..Default::default()
        };
        assert!(resolv_conf(Some(&bad)).is_err());
        Ok(())
    }

    #[test]
    fn hosts_name_the_pods_addresses() {
        assert!(hosts("web", &["10.88.0.5".into()]).ends_with("10.88.0.5\tweb\n"));
    }
}
