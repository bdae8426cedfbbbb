//! The pod's /etc/hostname, /etc/resolv.conf and /etc/hosts, bound into its containers.

use std::fmt::Write as _;
use std::path::Path;

use k8s_cri::v1 as cri;

use crate::CriError;

pub(crate) const HOSTNAME: &str = "hostname";
pub(crate) const RESOLV_CONF: &str = "resolv.conf";
pub(crate) const HOSTS: &str = "hosts";
/// The pod's /dev/shm: one tmpfs its containers share, as they share its IPC namespace.
pub(crate) const SHM: &str = "shm";
/// Docker's and containerd's /dev/shm size.
const SHM_SIZE: &str = "size=65536k";

/// Mounts the pod's shared /dev/shm tmpfs at `<dir>/shm`.
pub(crate) fn mount_shm(dir: &Path) -> Result<(), CriError> {
    use nix::mount::{mount, MsFlags};
    let target = dir.join(SHM);
    std::fs::create_dir_all(&target).map_err(CriError::io("create", &target))?;
    mount(
        Some("shm"),
        &target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,{SHM_SIZE}").as_str()),
    )
    .map_err(|e| {
        CriError::Internal(format!(
            "mounting the pod's /dev/shm at {}: {e}",
            target.display()
        ))
    })
}

/// Unmounts the pod's /dev/shm (lazily: a container still holding it keeps its view).
/// Not mounted is fine.
pub(crate) fn unmount_shm(dir: &Path) -> Result<(), CriError> {
    use nix::mount::{umount2, MntFlags};
    let target = dir.join(SHM);
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(CriError::Internal(format!(
            "unmounting the pod's /dev/shm at {}: {e}",
            target.display()
        ))),
    }
}

/// resolv.conf from the pod's DNS config, or the host's when the pod gives none.
pub(crate) fn resolv_conf(dns: Option<&cri::DnsConfig>) -> Result<String, CriError> {
    let Some(dns) =
        dns.filter(|d| !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()))
    else {
        return std::fs::read_to_string("/etc/resolv.conf").or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(String::new())
            } else {
                Err(CriError::io("read", "/etc/resolv.conf")(e))
            }
        });
    };
    let mut out = String::new();
    for field in dns.servers.iter().chain(&dns.searches).chain(&dns.options) {
        if field.contains(['\n', '\r']) || field.trim().is_empty() {
            return Err(CriError::InvalidArgument(format!(
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
pub(crate) fn hosts(hostname: &str, ips: &[String]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for ip in ips {
        let _ = writeln!(out, "{ip}\t{hostname}");
    }
    out
}

pub(crate) fn write(dir: &Path, name: &str, content: &str) -> Result<(), CriError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).map_err(CriError::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(CriError::io("rename", &path))
}

/// The pod's hostname: the one its config asks for (checked), else the node's. An
/// empty hostname is valid CRI: kubelet leaves it empty for many pods and containerd
/// then keeps the node's name, which a new UTS namespace starts with; the pod's name is
/// no hostname (generated names pass 64 characters).
pub fn pod_hostname(config: &cri::PodSandboxConfig) -> Result<String, CriError> {
    if config.hostname.is_empty() {
        let node = nix::unistd::gethostname()
            .map_err(|e| CriError::Internal(format!("reading the node's hostname: {e}")))?;
        return node.into_string().map_err(|name| {
            CriError::Internal(format!("the node's hostname {name:?} is not UTF-8"))
        });
    }
    validate_hostname(&config.hostname)?;
    Ok(config.hostname.clone())
}

/// A valid hostname: 1-64 bytes of letters, digits, '-' and '.'.
pub(crate) fn validate_hostname(h: &str) -> Result<(), CriError> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(CriError::InvalidArgument(format!(
            "hostname {h:?} is not 1-64 letters, digits, '-' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() -> Result<(), CriError> {
        let dns = cri::DnsConfig {
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
        let bad = cri::DnsConfig {
            servers: vec!["1.1.1.1\nnameserver 6.6.6.6".into()],
            ..Default::default()
        };
        assert!(resolv_conf(Some(&bad)).is_err());
        Ok(())
    }

    #[test]
    fn hosts_and_hostnames() {
        assert!(hosts("web", &["10.88.0.5".into()]).ends_with("10.88.0.5\tweb\n"));
        assert!(validate_hostname("web-1.example").is_ok());
        assert!(validate_hostname("a/b").is_err());
        assert!(validate_hostname("").is_err());
    }

    #[test]
    fn an_empty_hostname_is_the_nodes() -> Result<(), CriError> {
        let node = nix::unistd::gethostname()
            .map_err(|e| CriError::Internal(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let mut config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "create-PodSandbox-for-container-2fcf5cbc-ef98-11f1-b977-1e86d971c08e".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pod_hostname(&config)?, node);
        config.hostname = "web-1".into();
        assert_eq!(pod_hostname(&config)?, "web-1");
        config.hostname = "a/b".into();
        assert!(pod_hostname(&config).is_err());
        Ok(())
    }
}
