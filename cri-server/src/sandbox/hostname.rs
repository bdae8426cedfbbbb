//! The pod's hostname, as the CRI asks for it.

use k8s_cri::v1 as cri;

use crate::CriError;

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
pub fn validate_hostname(h: &str) -> Result<(), CriError> {
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
    fn hostnames_are_checked() {
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
