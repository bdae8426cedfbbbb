//! berth's default seccomp profile.
//!
//! A deny list on top of an allow-by-default filter: the system calls Docker's default
//! profile keeps from containers, refused with EPERM. Calls that a capability makes
//! legitimate (mounting with CAP_SYS_ADMIN, setting the clock with CAP_SYS_TIME, …) are
//! refused only when the container lacks that capability, so `--cap-add` keeps
//! working as users expect. Namespace creation is the one thing capabilities do not
//! guard (an unprivileged user namespace needs none), so `unshare`, `setns` and
//! `clone` with namespace flags are refused without CAP_SYS_ADMIN, and `clone3`
//! answers ENOSYS there, which makes libc fall back to `clone`.
//!
//! Privileged containers and `Seccomp::Unconfined` get no filter.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall, Spec,
};

use super::{linux_mut, process_mut, seccomp_profile, Container, SpecError};
use crate::config::Seccomp;

/// Refused whatever the container's capabilities: interfaces that are not namespaced
/// (the kernel keyring, kernel modules' symbol table, obsolete calls) or that break
/// isolation outright.
const ALWAYS: &[&str] = &[
    "add_key",
    "keyctl",
    "request_key",
    "get_kernel_syms",
    "query_module",
    "create_module",
    "nfsservctl",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// Refused unless the container holds the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "mount",
            "umount",
            "umount2",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "pivot_root",
            "swapon",
            "swapoff",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "name_to_handle_at",
            "setns",
            "unshare",
            "bpf",
            "perf_event_open",
        ],
    ),
    (
        "CAP_SYS_MODULE",
        &["init_module", "finit_module", "delete_module"],
    ),
    ("CAP_SYS_BOOT", &["reboot", "kexec_load", "kexec_file_load"]),
    (
        "CAP_SYS_TIME",
        &[
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
        ],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_RAWIO", &["ioperm", "iopl"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "process_vm_readv", "process_vm_writev", "ptrace"],
    ),
    (
        "CAP_SYS_NICE",
        &["get_mempolicy", "set_mempolicy", "mbind", "move_pages"],
    ),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("CAP_SYSLOG", &["syslog"]),
];

/// The namespace flags of clone(2).
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The architectures a filter covers on this machine: the native one and the ones its
/// kernel also runs binaries of.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        Vec::new()
    }
}

fn errno_rule(names: Vec<String>, errno: u32) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(LinuxSeccompAction::ScmpActErrno);
    rule.set_errno_ret(Some(errno));
    rule
}

/// The OCI `linux.seccomp` for a container holding `caps`.
pub fn default_profile(caps: &[String]) -> Result<LinuxSeccomp, SpecError> {
    let holds = |cap: &str| caps.iter().any(|c| c == cap);
    let mut refused: Vec<String> = ALWAYS.iter().map(|c| c.to_string()).collect();
    for (cap, calls) in BY_CAPABILITY {
        if !holds(cap) {
            refused.extend(calls.iter().map(|c| c.to_string()));
        }
    }
    let mut rules = vec![errno_rule(refused, EPERM)];
    if !holds("CAP_SYS_ADMIN") {
        // Conditions on one argument are alternatives: any namespace flag refuses.
        let args: Vec<LinuxSeccompArg> = CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|f| {
                LinuxSeccompArgBuilder::default()
                    .index(0usize)
                    .value(*f)
                    .value_two(*f)
                    .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                    .build()
            })
            .collect::<Result<_, _>>()?;
        let mut clone = errno_rule(vec!["clone".into()], EPERM);
        clone.set_args(Some(args));
        rules.push(clone);
        rules.push(errno_rule(vec!["clone3".into()], ENOSYS));
    }
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(LinuxSeccompAction::ScmpActAllow);
    seccomp.set_architectures(Some(architectures()));
    seccomp.set_syscalls(Some(rules));
    Ok(seccomp)
}

/// `no_new_privileges` and the seccomp filter (none for privileged containers, as with
/// Docker).
pub(super) fn with_security_opts(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let security = &c.config().security;
    process_mut(spec).set_no_new_privileges(Some(security.no_new_privileges));
    if security.privileged {
        return Ok(());
    }
    let seccomp = match &security.seccomp {
        Seccomp::Default => default_profile(&c.caps)?,
        Seccomp::Unconfined => return Ok(()),
        Seccomp::Profile(json) => {
            let target = seccomp_profile::Target {
                caps: &c.caps,
                kernel: seccomp_profile::kernel(),
            };
            seccomp_profile::convert(json.as_bytes(), &target).map_err(|e| {
                SpecError::SecurityOpt(
                    "seccomp=<profile>".into(),
                    format!("the seccomp profile is invalid: {e}"),
                )
            })?
        }
    };
    linux_mut(spec).set_seccomp(Some(seccomp));
    Ok(())
}
