//! What every container gets unless told otherwise: Docker's default capabilities,
//! masked and read-only paths, mounts and device rules.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec};

use super::{linux_mut, Container, SpecError};

/// Docker's default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from the container (a /dev/null bind, or an empty read-only tmpfs).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths the container sees read-only.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `/dev/shm`'s size when `ShmSize` is unset (Docker's 64 MiB).
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// The filesystems every container mounts, before binds and tmpfs from the request.
pub fn mounts(shm_size: i64, privileged: bool) -> Vec<Mount> {
    let sys_opts: &[&str] = if privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let shm_opts = format!("size={}k", shm_size / 1024);
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount("/sys", "sysfs", "sysfs", sys_opts),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_opts],
        ),
    ]
}

/// The default mounts, `/dev/shm` sized by `ShmSize`.
pub(super) fn with_default_mounts(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let config = c.config();
    let shm = if config.resources.shm_size > 0 {
        config.resources.shm_size
    } else {
        DEFAULT_SHM_SIZE
    };
    spec.set_mounts(Some(mounts(shm, config.security.privileged)));
    Ok(())
}

/// Docker's masked and read-only paths; none for privileged containers.
pub(super) fn with_masked_paths(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let privileged = c.config().security.privileged;
    let paths = |p: &[&str]| -> Vec<String> {
        if privileged {
            Vec::new()
        } else {
            p.iter().map(|s| s.to_string()).collect()
        }
    };
    let linux = linux_mut(spec);
    linux.set_masked_paths(Some(paths(&MASKED_PATHS)));
    linux.set_readonly_paths(Some(paths(&READONLY_PATHS)));
    Ok(())
}

fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow);
    rule.set_typ(typ);
    rule.set_major(major);
    rule.set_minor(minor);
    rule.set_access(Some("rwm".into()));
    rule
}

/// cgroup device rules: deny everything, then allow what a container needs
/// (null, zero, full, random, urandom, tty, console, ptmx, pts, tun).
pub fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    if privileged {
        return vec![device_rule(true, None, None, None)];
    }
    let mut rules = vec![device_rule(false, None, None, None)];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (136, -1),
        (10, 200),
    ] {
        // -1: every minor number (the rule leaves it out).
        let minor = (minor >= 0).then_some(minor);
        rules.push(device_rule(
            true,
            Some(LinuxDeviceType::C),
            Some(major),
            minor,
        ));
    }
    rules
}
