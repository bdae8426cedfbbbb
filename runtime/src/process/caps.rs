//! The five capability sets, with raw capget/capset/prctl.

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{Error, Result};

/// Capability names by number (as in linux/capability.h).
pub const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn number(c: &Capability) -> Option<u32> {
    let name = c.to_string();
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// A set as a bit mask; capabilities the kernel does not know are skipped.
pub fn mask(set: Option<&Capabilities>, last: u32) -> u64 {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        if let Some(n) = number(c).filter(|n| *n <= last) {
            m |= 1 << n;
        }
    }
    m
}

/// The highest capability number this kernel knows.
pub fn last_cap() -> u32 {
    // The kernel's answer does not change while we run: read once.
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
    })
}

/// Precomputed masks of the five sets.
#[derive(Debug, Clone, Copy, Default)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub last: u32,
}

impl CapMasks {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Self {
        let last = last_cap();
        match c {
            None => CapMasks {
                last,
                ..Default::default()
            },
            Some(c) => CapMasks {
                bounding: mask(c.bounding().as_ref(), last),
                effective: mask(c.effective().as_ref(), last),
                permitted: mask(c.permitted().as_ref(), last),
                inheritable: mask(c.inheritable().as_ref(), last),
                ambient: mask(c.ambient().as_ref(), last),
                last,
            },
        }
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// Drops every capability not in the bounding mask.
pub fn drop_bounding(m: &CapMasks) -> Result<()> {
    for n in 0..=m.last {
        if m.bounding & (1 << n) == 0 {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) };
            if r != 0 {
                let e = Errno::last();
                if e != Errno::EINVAL {
                    return Err(Error::sys(
                        format!("dropping CAP_{} from the bounding set", NAMES[n as usize]),
                        e,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Sets effective, permitted, inheritable, then raises the ambient set.
pub fn set(m: &CapMasks) -> Result<()> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: m.effective as u32,
            permitted: m.permitted as u32,
            inheritable: m.inheritable as u32,
        },
        CapData {
            effective: (m.effective >> 32) as u32,
            permitted: (m.permitted >> 32) as u32,
            inheritable: (m.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs laid out as the kernel's v3 ABI expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(Error::sys("capset", Errno::last()));
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    for n in 0..=m.last {
        if m.ambient & (1 << n) != 0 {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    n as libc::c_ulong,
                    0,
                    0,
                )
            };
            if r != 0 {
                // As runc: an ambient capability that is not also permitted and
                // inheritable is skipped, not fatal.
                tracing::debug!(
                    "ambient CAP_{} not raised: {}",
                    NAMES[n as usize],
                    Errno::last()
                );
            }
        }
    }
    Ok(())
}
