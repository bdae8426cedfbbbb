//! Seccomp filters from the spec, built with libseccomp and compiled to BPF before
//! fork, and loaded by the container process just before exec.
//!
//! The filter is compiled once (libseccomp's export), not at load: a process that
//! execs into a running container every second (a health check) reuses the program
//! its container's first exec compiled, and the child only makes one seccomp(2) call.

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::error::{Error, Result};

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        other => {
            return Err(Error::Seccomp(format!(
                "action {} is not supported",
                name(&other)
            )))
        }
    })
}

fn op(o: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // OCI: value is the mask, valueTwo the datum.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

/// A filter ready to load: the BPF program libseccomp generated. Cheap to clone.
#[derive(Clone)]
pub struct Filter {
    program: std::sync::Arc<Vec<libc::sock_filter>>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter")
    }
}

fn se(step: &str, e: impl std::fmt::Display) -> Error {
    Error::Seccomp(format!("{step}: {e}"))
}

/// Builds the filter of `spec`. Unknown syscall names are skipped (as runc does).
pub fn build(spec: &LinuxSeccomp) -> Result<Filter> {
    if spec.listener_path().is_some() {
        return Err(Error::Unsupported(
            "seccomp listenerPath (SCMP_ACT_NOTIFY)".into(),
        ));
    }
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx =
        ScmpFilterContext::new_filter(default).map_err(|e| se("creating the filter", e))?;
    ctx.set_ctl_nnp(false)
        .map_err(|e| se("no_new_privs attribute", e))?;
    for a in spec.architectures().iter().flatten() {
        let s = name(a);
        let arch = ScmpArch::from_str(&s).map_err(|e| se(&format!("architecture {s}"), e))?;
        ctx.add_arch(arch)
            .map_err(|e| se(&format!("adding architecture {s}"), e))?;
    }
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let mut conds: Vec<ScmpArgCompare> = Vec::new();
        for a in rule.args().iter().flatten() {
            let (o, datum) = op(a.op(), a.value(), a.value_two());
            conds.push(ScmpArgCompare::new(a.index() as u32, o, datum));
        }
        // libseccomp wants at most one condition per argument in a rule: several
        // conditions on the same argument become separate rules (OR), as runc does.
        let mut seen = [false; 6];
        let same_arg = rule
            .args()
            .iter()
            .flatten()
            .any(|a| a.index() < 6 && std::mem::replace(&mut seen[a.index()], true));
        for n in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(n) else {
                tracing::debug!("seccomp: unknown syscall {n}, skipped");
                continue;
            };
            let res = if conds.is_empty() {
                ctx.add_rule(act, sys)
            } else if same_arg {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sys, &[*c]))
            } else {
                ctx.add_rule_conditional(act, sys, &conds)
            };
            res.map_err(|e| se(&format!("rule for {n}"), e))?;
        }
    }
    compile(&ctx)
}

/// The BPF program of `ctx`, as libseccomp would load it (through a memfd: libseccomp
/// 2.5 exports to a file descriptor only).
fn compile(ctx: &ScmpFilterContext) -> Result<Filter> {
    use std::io::{Read, Seek};
    use std::os::fd::FromRawFd;
    // SAFETY: a constant C string and flags; the fd returned is owned by `file` below.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(se(
            "making a memfd for the program",
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: `fd` was just made and nothing else owns it.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    ctx.export_bpf(&mut file)
        .map_err(|e| se("compiling the filter", e))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| se("reading the compiled filter", e))?;
    let size = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % size != 0 || bytes.len() / size > u16::MAX as usize {
        return Err(se(
            "compiling the filter",
            format!("libseccomp gave a program of {} bytes", bytes.len()),
        ));
    }
    let program = bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Ok(Filter {
        program: std::sync::Arc::new(program),
    })
}

impl Filter {
    /// Loads the filter into the calling thread (seccomp(2) with no flags, as
    /// libseccomp loads a filter without TSYNC, LOG or SSB attributes).
    pub fn load(&self) -> Result<()> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at a live program of `len` instructions for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(se("loading the filter", nix::errno::Errno::last()));
        }
        Ok(())
    }

    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether the program has no instructions.
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}
