//! Limits that only some hosts can apply: hugepage limits (the hugetlb controller and
//! the page size) and cgroup v2 `unified` keys. CRI asks for both; they are checked
//! against the host before a container is made, so that a request the runtime would
//! refuse at start fails at create time and leaves nothing behind.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

/// Why a limit cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The request is fine but this host cannot honour it.
    #[error("{0}")]
    Unsupported(String),
}

/// What this host's cgroups offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCgroups {
    /// /sys/fs/cgroup is the cgroup v2 unified hierarchy.
    pub v2: bool,
    /// The hugetlb controller is usable where the runtime puts containers (a v1
    /// hierarchy on a v1/hybrid host, enabled in the root on a v2 host).
    pub hugetlb: bool,
    /// Hugepage sizes the kernel has, in kB (/sys/kernel/mm/hugepages).
    pub page_sizes_kb: Vec<u64>,
}

impl HostCgroups {
    pub fn probe() -> HostCgroups {
        let root = Path::new("/sys/fs/cgroup");
        let v2 = root.join("cgroup.controllers").exists();
        let hugetlb = if v2 {
            std::fs::read_to_string(root.join("cgroup.controllers"))
                .is_ok_and(|s| s.split_whitespace().any(|c| c == "hugetlb"))
        } else {
            // /proc/cgroups: a hierarchy id of 0 means no v1 hierarchy has it.
            std::fs::read_to_string("/proc/cgroups").is_ok_and(|s| {
                s.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() >= 4 && f[0] == "hugetlb" && f[1] != "0" && f[3] == "1"
                })
            })
        };
        let page_sizes_kb = std::fs::read_dir("/sys/kernel/mm/hugepages")
            .map(|d| {
                d.filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()
                })
                .collect()
            })
            .unwrap_or_default();
        HostCgroups {
            v2,
            hugetlb,
            page_sizes_kb,
        }
    }
}

/// Whether the host can switch off the OOM killer of a container's memory cgroup: a
/// cgroup v1 memory hierarchy has `memory.oom_control`; cgroup v2 has no such switch.
pub fn oom_kill_disable_supported() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists()
}

/// A hugepage size as cgroups name it (`2MB`, `1GB`, `64KB`) in kB.
fn page_size_kb(size: &str) -> Option<u64> {
    let split = size.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = size.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "KB" => 1,
        "MB" => 1 << 10,
        "GB" => 1 << 20,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Checks that `host` can apply `hugepages` (`(page size, bytes)`) and `unified`.
pub fn check(
    host: &HostCgroups,
    hugepages: &[(String, u64)],
    unified: &BTreeMap<String, String>,
) -> Result<(), LimitError> {
    for (size, _) in hugepages {
        let kb = page_size_kb(size).ok_or_else(|| {
            LimitError::Invalid(format!(
                "hugepage page size {size:?} is not a size like 2MB or 1GB"
            ))
        })?;
        if !host.hugetlb {
            return Err(LimitError::Unsupported(format!(
                "hugepage limits ({size}) need the hugetlb cgroup controller, which this host does not offer {}",
                if host.v2 {
                    "in /sys/fs/cgroup/cgroup.controllers"
                } else {
                    "as a cgroup v1 hierarchy (see /proc/cgroups)"
                }
            )));
        }
        if !host.page_sizes_kb.contains(&kb) {
            return Err(LimitError::Unsupported(format!(
                "hugepage size {size} is not supported by this kernel (see /sys/kernel/mm/hugepages)"
            )));
        }
    }
    for key in unified.keys() {
        if key.is_empty() || key.contains('/') || key.starts_with('.') {
            return Err(LimitError::Invalid(format!(
                "unified key {key:?} is not a cgroup file name"
            )));
        }
    }
    if !unified.is_empty() && !host.v2 {
        let keys: Vec<&str> = unified.keys().map(String::as_str).collect();
        return Err(LimitError::Unsupported(format!(
            "unified cgroup settings ({}) need a cgroup v2 host; this host has cgroup v1 controllers",
            keys.join(", ")
        )));
    }
    Ok(())
}

/// OCI `hugepageLimits`.
pub fn hugepage_limits(hugepages: &[(String, u64)]) -> Result<Vec<LinuxHugepageLimit>, String> {
    hugepages
        .iter()
        .map(|(size, limit)| {
            let mut l = LinuxHugepageLimit::default();
            l.set_page_size(size.clone());
            l.set_limit(
                i64::try_from(*limit)
                    .map_err(|_| format!("hugepage limit {limit} ({size}) is out of range"))?,
            );
            Ok(l)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(v2: bool, hugetlb: bool) -> HostCgroups {
        HostCgroups {
            v2,
            hugetlb,
            page_sizes_kb: vec![2048, 1 << 20],
        }
    }

    #[test]
    fn what_the_host_lacks_is_refused_by_name() {
        let huge = vec![("2MB".to_string(), 4u64 << 20)];
        let unified: BTreeMap<String, String> = [("memory.high".into(), "1G".into())].into();
        let none = BTreeMap::new();
        assert_eq!(check(&host(false, true), &huge, &none), Ok(()));
        assert_eq!(check(&host(true, true), &huge, &unified), Ok(()));
        let err = |h, p: &[(String, u64)], u| check(&h, p, u).err().map(|e| e.to_string());
        assert!(err(host(false, false), &huge, &none).is_some_and(|e| e.contains("hugetlb")));
        assert!(err(host(false, true), &[], &unified)
            .is_some_and(|e| e.contains("memory.high") && e.contains("cgroup v2")));
        assert!(
            err(host(true, true), &[("16MB".into(), 1)], &none).is_some_and(|e| e.contains("16MB"))
        );
        assert!(matches!(
            check(&host(true, true), &[("2 MB".into(), 1)], &none),
            Err(LimitError::Invalid(_))
        ));
        assert!(matches!(
            check(
                &host(true, true),
                &[],
                &[("../cpu.max".into(), "1".into())].into()
            ),
            Err(LimitError::Invalid(_))
        ));
    }

    #[test]
    fn page_sizes_parse() {
        assert_eq!(page_size_kb("2MB"), Some(2048));
        assert_eq!(page_size_kb("1GB"), Some(1 << 20));
        assert_eq!(page_size_kb("64KB"), Some(64));
        assert_eq!(page_size_kb("2mb"), None);
        assert_eq!(page_size_kb("MB"), None);
    }

    /// This machine as the tests run on it: hybrid, hugetlb left to cgroup2.
    #[test]
    fn the_probe_reads_this_host() {
        let h = HostCgroups::probe();
        let proc = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
        if !h.v2 {
            let v1_hugetlb = proc.lines().any(|l| {
                l.starts_with("hugetlb\t") && l.split('\t').nth(1).is_some_and(|id| id != "0")
            });
            assert_eq!(h.hugetlb, v1_hugetlb, "{proc}");
        }
        if Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
            assert!(h.page_sizes_kb.contains(&2048));
        }
    }
}
