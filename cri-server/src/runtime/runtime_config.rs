//! `RuntimeConfig` (the cgroup driver) and `UpdateRuntimeConfig` (the pod CIDR).

use k8s_cri::v1 as cri;

use crate::{Cri, CriError};

/// berth manages cgroups through cgroupfs; there is no systemd on its nodes' path.
pub(super) fn runtime_config(_req: &cri::RuntimeConfigRequest) -> cri::RuntimeConfigResponse {
    cri::RuntimeConfigResponse {
        linux: Some(cri::LinuxRuntimeConfiguration {
            cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
        }),
    }
}

pub(super) fn update(
    cri: &Cri,
    req: cri::UpdateRuntimeConfigRequest,
) -> Result<cri::UpdateRuntimeConfigResponse, CriError> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    for part in cidr.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        validate_cidr(part)?;
    }
    tracing::info!(pod_cidr = %cidr, "pod CIDR updated");
    cri.set_pod_cidr(cidr);
    Ok(cri::UpdateRuntimeConfigResponse {})
}

fn validate_cidr(s: &str) -> Result<(), CriError> {
    let bad = || CriError::InvalidArgument(format!("pod CIDR {s:?} is not an address/prefix"));
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok(())
}

impl Cri {
    /// The pod CIDR last set by UpdateRuntimeConfig (empty until then).
    pub fn pod_cidr(&self) -> String {
        self.inner
            .pod_cidr
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    fn set_pod_cidr(&self, cidr: String) {
        if let Ok(mut c) = self.inner.pod_cidr.lock() {
            *c = cidr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate_cidr;

    #[test]
    fn cidrs() {
        assert!(validate_cidr("10.244.1.0/24").is_ok());
        assert!(validate_cidr("fd00::/64").is_ok());
        assert!(validate_cidr("10.244.1.0/33").is_err());
        assert!(validate_cidr("10.244.1.0").is_err());
        assert!(validate_cidr("x/8").is_err());
    }
}
