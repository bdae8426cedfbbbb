//! Seccomp profiles in Docker's JSON format (the format of moby's and
//! containers/common's `seccomp.json`, `docker run --security-opt seccomp=FILE` and
//! Kubernetes `Localhost` profiles) converted to the OCI `linux.seccomp`.
//!
//! The Docker format is a template: `archMap` lists each native architecture with the
//! ones its kernel also runs, and a rule may apply only to some architectures or only
//! when the container holds (or lacks) some capabilities (`includes`/`excludes`). The
//! conversion resolves those for this machine and the container's capabilities, as
//! Docker does, and checks everything the runtime would otherwise fail on later.
//!
//! Unknown syscall names: a rule that allows (or only logs) a call libseccomp does not
//! know is kept as it is and the name skipped by the runtime, because profiles list
//! calls newer than some libseccomp versions and denying them is the safe outcome. A
//! rule that refuses, kills, traps or traces an unknown name is an error: a misspelt
//! name there would silently let the call through.

use std::collections::BTreeSet;

use libseccomp::ScmpSyscall;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSyscall};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A profile that cannot be used, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ProfileError(String);

fn bad(msg: impl Into<String>) -> ProfileError {
    ProfileError(msg.into())
}

/// `null` where a list, string or object is expected reads as empty (Go's encoder
/// writes nil slices as `null`, and profiles in the wild carry them).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default, deserialize_with = "nullable")]
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    listener_path: String,
    #[serde(default, deserialize_with = "nullable")]
    flags: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    names: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    action: String,
    errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    includes: Filter,
    #[serde(default, deserialize_with = "nullable")]
    excludes: Filter,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    #[serde(default, deserialize_with = "nullable")]
    value: u64,
    #[serde(default, deserialize_with = "nullable")]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default, deserialize_with = "nullable")]
    arches: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    min_kernel: String,
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
];

const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
];

const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// This machine, as the Docker format names it: (Go's GOARCH name used in
/// `includes.arches`, libseccomp's name used in `archMap`).
fn native() -> (&'static str, &'static str) {
    if cfg!(target_arch = "x86_64") {
        ("amd64", "SCMP_ARCH_X86_64")
    } else if cfg!(target_arch = "aarch64") {
        ("arm64", "SCMP_ARCH_AARCH64")
    } else if cfg!(target_arch = "riscv64") {
        ("riscv64", "SCMP_ARCH_RISCV64")
    } else if cfg!(target_arch = "s390x") {
        ("s390x", "SCMP_ARCH_S390X")
    } else {
        ("", "")
    }
}

/// `major.minor` of a kernel release such as `6.1.0-13-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel, for [`Target::kernel`].
pub fn kernel() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    kernel_version(&uts.release().to_string_lossy())
}

/// What the conversion resolves a profile against.
pub struct Target<'a> {
    /// The container's capabilities (`CAP_…`).
    pub caps: &'a [String],
    /// `includes.minKernel` compares with this; `None`: unknown, such rules apply.
    pub kernel: Option<(u32, u32)>,
}

impl Target<'_> {
    fn applies(&self, rule: &Rule, arch: &str) -> Result<bool, ProfileError> {
        let holds = |c: &String| self.caps.iter().any(|h| h == c);
        let inc = &rule.includes;
        let exc = &rule.excludes;
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            return Ok(false);
        }
        if !inc.caps.iter().all(holds) {
            return Ok(false);
        }
        if !inc.min_kernel.is_empty() {
            let wanted = kernel_version(&inc.min_kernel).ok_or_else(|| {
                bad(format!(
                    "includes.minKernel {:?} is not a kernel version like 5.8",
                    inc.min_kernel
                ))
            })?;
            if self.kernel.is_some_and(|k| k < wanted) {
                return Ok(false);
            }
        }
        if exc.arches.iter().any(|a| a == arch) || exc.caps.iter().any(holds) {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Checks `json` without resolving it for a container (names, actions, operators,
/// architectures), so that a caller can refuse a bad file before creating anything.
pub fn check(json: &[u8]) -> Result<(), ProfileError> {
    convert(
        json,
        &Target {
            caps: &[],
            kernel: None,
        },
    )
    .map(|_| ())
}

/// `name` as the oci-spec type the runtime reads it into (an action, operator,
/// architecture or flag), exactly as it reads `config.json`.
fn typed<T: DeserializeOwned>(name: &str, what: &str) -> Result<T, ProfileError> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        bad(format!(
            "{what} {name:?} is not supported by berth's runtime (its spec types do not know it)"
        ))
    })
}

/// The OCI `linux.seccomp` of the Docker-format profile `json` for `target`.
pub fn convert(json: &[u8], target: &Target<'_>) -> Result<LinuxSeccomp, ProfileError> {
    let p: Profile =
        serde_json::from_slice(json).map_err(|e| bad(format!("not a seccomp profile: {e}")))?;
    if p.default_action.is_empty() {
        return Err(bad("defaultAction is missing"));
    }
    check_action(&p.default_action, "defaultAction")?;
    if !p.listener_path.is_empty() {
        return Err(bad(
            "listenerPath (seccomp user notification) is not supported by berth's runtime",
        ));
    }
    for f in &p.flags {
        if !FLAGS.contains(&f.as_str()) {
            return Err(bad(format!(
                "unknown flag {f:?} (known: {})",
                FLAGS.join(", ")
            )));
        }
    }
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err(bad(
            "both architectures and archMap are set; use one of them",
        ));
    }
    let (goarch, scmp_arch) = native();
    let mut arches: Vec<String> = Vec::new();
    for a in &p.architectures {
        check_arch(a)?;
        arches.push(a.clone());
    }
    for m in &p.arch_map {
        check_arch(&m.architecture)?;
        for s in &m.sub_architectures {
            check_arch(s)?;
        }
        if m.architecture == scmp_arch {
            arches.push(m.architecture.clone());
            arches.extend(m.sub_architectures.iter().cloned());
        }
    }
    let mut seen = BTreeSet::new();
    arches.retain(|a| seen.insert(a.clone()));

    let mut rules = Vec::new();
    for (i, r) in p.syscalls.iter().enumerate() {
        let what = format!("syscalls[{i}]");
        let names: Vec<String> = match (r.name.is_empty(), r.names.is_empty()) {
            (false, false) => {
                return Err(bad(format!(
                    "{what}: both name and names are set; use one of them"
                )))
            }
            (false, true) => vec![r.name.clone()],
            (true, false) => r.names.clone(),
            (true, true) => return Err(bad(format!("{what}: no syscall name"))),
        };
        if r.action.is_empty() {
            return Err(bad(format!("{what}: action is missing")));
        }
        check_action(&r.action, &format!("{what}.action"))?;
        let lenient = matches!(r.action.as_str(), "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG");
        for n in &names {
            if ScmpSyscall::from_name(n).is_err() && !lenient {
                return Err(bad(format!(
                    "{what}: unknown syscall {n:?} in a {} rule",
                    r.action
                )));
            }
        }
        let mut args = Vec::new();
        for (j, a) in r.args.iter().enumerate() {
            if a.index > 5 {
                return Err(bad(format!(
                    "{what}.args[{j}]: index {} is out of range (0 to 5)",
                    a.index
                )));
            }
            if !OPS.contains(&a.op.as_str()) {
                return Err(bad(format!(
                    "{what}.args[{j}]: unknown op {:?} (known: {})",
                    a.op,
                    OPS.join(", ")
                )));
            }
            let arg = LinuxSeccompArgBuilder::default()
                .index(a.index as usize)
                .value(a.value)
                .value_two(a.value_two)
                .op(typed::<oci_spec::runtime::LinuxSeccompOperator>(
                    &a.op, "operator",
                )?)
                .build()
                .map_err(|e| bad(format!("{what}.args[{j}]: {e}")))?;
            args.push(arg);
        }
        for a in r.includes.arches.iter().chain(&r.excludes.arches) {
            if a.starts_with("SCMP_ARCH_") {
                return Err(bad(format!(
                    "{what}: includes/excludes arches take Go names (amd64, arm64, …), not {a}"
                )));
            }
        }
        if !r.excludes.min_kernel.is_empty() {
            return Err(bad(format!("{what}: excludes.minKernel is not supported")));
        }
        if !target.applies(r, goarch)? {
            continue;
        }
        let mut rule = LinuxSyscall::default();
        rule.set_names(names);
        rule.set_action(typed::<LinuxSeccompAction>(&r.action, "action")?);
        rule.set_errno_ret(r.errno_ret);
        if !args.is_empty() {
            rule.set_args(Some(args));
        }
        rules.push(rule);
    }
    let mut out = LinuxSeccomp::default();
    out.set_default_action(typed::<LinuxSeccompAction>(
        &p.default_action,
        "defaultAction",
    )?);
    out.set_default_errno_ret(p.default_errno_ret);
    out.set_architectures(Some(
        arches
            .iter()
            .map(|a| typed(a, "architecture"))
            .collect::<Result<_, _>>()?,
    ));
    out.set_syscalls(Some(rules));
    if !p.flags.is_empty() {
        out.set_flags(Some(
            p.flags
                .iter()
                .map(|f| typed(f, "flag"))
                .collect::<Result<_, _>>()?,
        ));
    }
    Ok(out)
}

fn check_action(a: &str, what: &str) -> Result<(), ProfileError> {
    if a == "SCMP_ACT_NOTIFY" {
        return Err(bad(format!(
            "{what}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported by berth's runtime"
        )));
    }
    if !ACTIONS.contains(&a) {
        return Err(bad(format!(
            "{what}: unknown action {a:?} (known: {})",
            ACTIONS.join(", ")
        )));
    }
    Ok(())
}

fn check_arch(a: &str) -> Result<(), ProfileError> {
    if ARCHES.contains(&a) {
        Ok(())
    } else {
        Err(bad(format!("unknown architecture {a:?}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// The conversion as the JSON written into `config.json`.
    fn conv(profile: Value, caps: &[&str]) -> Result<Value, ProfileError> {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        let out = convert(
            profile.to_string().as_bytes(),
            &Target {
                caps: &caps,
                kernel: Some((5, 10)),
            },
        )?;
        serde_json::to_value(out).map_err(|e| bad(e.to_string()))
    }

    #[test]
    fn a_docker_profile_becomes_oci_seccomp() -> Result<(), ProfileError> {
        let out = conv(
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122,
                     "comment": "ignored"},
                    {"name": "personality", "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_NE"}]}
                ]
            }),
            &[],
        )?;
        assert_eq!(
            out,
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
                    {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_NE"}]}
                ]
            })
        );
        // The runtime's spec types accept it.
        let typed: Result<oci_spec::runtime::LinuxSeccomp, _> = serde_json::from_value(out);
        assert!(typed.is_ok(), "{typed:?}");
        Ok(())
    }

    #[test]
    fn arch_map_and_includes_excludes_resolve_for_this_machine() -> Result<(), ProfileError> {
        let (goarch, scmp) = native();
        if goarch.is_empty() {
            return Ok(());
        }
        let other = if goarch == "amd64" { "arm64" } else { "amd64" };
        let profile = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
            ],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["write"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [goarch]}},
                {"names": ["open"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [other]}},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["chmod"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["close"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": [goarch]}},
                {"names": ["openat2"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.6"}},
                {"names": ["futex_waitv"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.16"}}
            ]
        });
        let names = |v: &Value| -> Vec<String> {
            v["syscalls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["names"][0].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let plain = conv(profile.clone(), &[])?;
        assert_eq!(plain["architectures"][0], json!(scmp));
        assert_eq!(names(&plain), ["read", "write", "chmod", "openat2"]);
        let admin = conv(profile, &["CAP_SYS_ADMIN"])?;
        assert_eq!(names(&admin), ["read", "write", "mount", "openat2"]);
        Ok(())
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let err = |p: Value| conv(p, &[]).err().map(|e| e.0).unwrap_or_default();
        assert!(err(json!({"syscalls": []})).contains("defaultAction is missing"));
        assert!(err(json!({"defaultAction": "SCMP_ACT_NOPE"})).contains("unknown action"));
        assert!(err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}))
        .contains("unknown op \"SCMP_CMP_ALMOST\""));
        assert!(err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}))
        .contains("unknown syscall \"mkdri\""));
        assert!(err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}))
        .contains("both name and names"));
        assert!(err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}))
        .contains("index 6"));
        assert!(err(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86"],
            "archMap": []})
        )
        .contains("unknown architecture"));
        assert!(err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}))
        .contains("both architectures and archMap"));
        assert!(err(json!({"defaultAction": "SCMP_ACT_NOTIFY"})).contains("not supported"));
        assert!(
            err(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}))
                .contains("listenerPath")
        );
        assert!(convert(
            b"{not json",
            &Target {
                caps: &[],
                kernel: None
            }
        )
        .is_err_and(|e| e.0.starts_with("not a seccomp profile")));
        // An allow rule may name calls this libseccomp does not know yet.
        assert!(conv(
            json!({"defaultAction": "SCMP_ACT_ERRNO",
                   "syscalls": [{"names": ["read", "call_from_the_future"], "action": "SCMP_ACT_ALLOW"}]}),
            &[]
        )
        .is_ok());
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.1.0-13-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("5.8"), Some((5, 8)));
        assert_eq!(kernel_version("x"), None);
    }

    /// The containers/common profile (podman's, same format as Docker's) converts, and
    /// the runtime's spec types accept the result.
    #[test]
    fn the_distribution_profile_converts_when_installed() -> Result<(), Box<dyn std::error::Error>>
    {
        let path = "/usr/share/containers/seccomp.json";
        let Ok(bytes) = std::fs::read(path) else {
            return Ok(());
        };
        let caps = vec!["CAP_CHOWN".to_string()];
        let out = convert(
            &bytes,
            &Target {
                caps: &caps,
                kernel: kernel(),
            },
        )?;
        assert!(out.syscalls().as_ref().is_some_and(|r| r.len() > 5));
        Ok(())
    }
}
