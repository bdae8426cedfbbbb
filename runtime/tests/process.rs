//! The container process as seen from inside: ids, caps, no_new_privs, rlimits,
//! seccomp, env, cwd, exit codes. Root only.

mod common;

use common::{status_field, Bundle};
use serde_json::json;

#[test]
fn runs_and_reports_exit_code() {
    let b = Bundle::new("exit", "echo hello; exit 3");
    let (code, out, err) = b.run();
    assert_eq!(code, 3, "stderr: {err}");
    assert_eq!(out.trim(), "hello");
    assert!(!b.root().join(&b.id).exists(), "run removes the state");
}

#[test]
fn user_groups_umask_env_cwd() {
    let mut b = Bundle::new("user", "id; umask; echo $FOO; pwd");
    b.spec["process"]["user"] =
        json!({"uid": 33, "gid": 33, "additionalGids": [100, 65534], "umask": 23});
    b.spec["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    b.spec["process"]["cwd"] = json!("/work/here");
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("uid=33(www-data) gid=33"), "{out}");
    assert!(
        lines[0].contains("groups=") && lines[0].contains("100") && lines[0].contains("65534"),
        "{out}"
    );
    assert_eq!(lines[1], "0027");
    assert_eq!(lines[2], "bar");
    assert_eq!(lines[3], "/work/here");
}

#[test]
fn capabilities_and_no_new_privs() {
    let mut b = Bundle::new("caps", "cat /proc/self/status");
    let caps = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    b.spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []});
    b.spec["process"]["noNewPrivileges"] = json!(true);
    let out = b.run_ok();
    // CHOWN=0, KILL=5, NET_BIND_SERVICE=10
    let want = format!("{:016x}", (1u64 << 0) | (1 << 5) | (1 << 10));
    assert_eq!(status_field(&out, "CapEff"), Some(want.as_str()), "{out}");
    assert_eq!(status_field(&out, "CapBnd"), Some(want.as_str()), "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("1"));
    assert_eq!(status_field(&out, "Seccomp"), Some("0"));
}

#[test]
fn non_root_with_ambient_caps() {
    let mut b = Bundle::new("ambient", "cat /proc/self/status");
    let caps = json!(["CAP_NET_BIND_SERVICE"]);
    b.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
    b.spec["process"]["noNewPrivileges"] = json!(false);
    let out = b.run_ok();
    let want = format!("{:016x}", 1u64 << 10);
    assert_eq!(status_field(&out, "CapAmb"), Some(want.as_str()), "{out}");
    assert_eq!(status_field(&out, "CapEff"), Some(want.as_str()), "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("0"));
}

#[test]
fn rlimits_applied() {
    let mut b = Bundle::new("rlimit", "ulimit -n; ulimit -Hn; ulimit -c");
    b.spec["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 600},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    let out = b.run_ok();
    assert_eq!(out.lines().collect::<Vec<_>>(), ["512", "600", "0"]);
}

#[test]
fn rlimit_above_hard_maximum_is_a_clear_error() {
    let mut b = Bundle::new("rlimit-high", "true");
    // Above fs.nr_open no process may raise RLIMIT_NOFILE, CAP_SYS_RESOURCE or not
    // (this host lacks that capability; another may have it).
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let high = nr_open + 1;
    b.spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": high, "hard": high}]);
    let (code, _, err) = b.run();
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "RLIMIT_NOFILE hard limit {high} exceeds the allowed maximum"
        )),
        "stderr: {err}"
    );
    assert!(
        !b.root().join(&b.id).exists(),
        "failed create leaves no state"
    );
    assert!(
        !b.cgroup_dir("memory").exists(),
        "failed create leaves no cgroup"
    );
}

#[test]
fn seccomp_errno_and_argument_conditions() {
    let mut b = Bundle::new(
        "seccomp",
        "grep Seccomp: /proc/self/status; mkdir /tmp/a 2>&1; touch /tmp/f; chmod 700 /tmp/f 2>&1; \
         chmod 755 /tmp/f && echo chmod-ok",
    );
    b.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "args": [{"index": 2, "value": 448, "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    let out = b.run_ok();
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // mkdir → EPERM (default errno); chmod 0700 → ENOSYS (errnoRet 38); 0755 allowed.
    assert!(
        out.contains("can't create directory '/tmp/a': Operation not permitted"),
        "{out}"
    );
    assert!(out.contains("Function not implemented"), "{out}");
    assert!(out.contains("chmod-ok"), "{out}");
}

#[test]
fn oom_score_adj_lower_is_clear_error_and_raise_works() {
    let mut b = Bundle::new("oom", "cat /proc/self/oom_score_adj");
    b.spec["process"]["oomScoreAdj"] = json!(500);
    assert_eq!(b.run_ok().trim(), "500");
    let mut b = Bundle::new("oom-low", "true");
    b.spec["process"]["oomScoreAdj"] = json!(-1000);
    let (code, _, err) = b.run();
    if code != 0 {
        assert!(err.contains("oomScoreAdj -1000"), "{err}");
    }
}

#[test]
fn missing_executable_is_reported() {
    let mut b = Bundle::new("noexec", "true");
    b.spec["process"]["args"] = json!(["/no/such/binary"]);
    let (code, _, err) = b.run();
    assert_ne!(code, 0);
    assert!(err.contains("/no/such/binary"), "{err}");
    // runc's words, which engines read to pick exit code 127 or 126.
    assert!(err.contains("no such file or directory"), "{err}");
    let mut b = Bundle::new("notexec", "true");
    b.spec["process"]["args"] = json!(["/etc/passwd"]);
    let (code, _, err) = b.run();
    assert_ne!(code, 0);
    assert!(
        err.contains(r#"exec: "/etc/passwd": permission denied"#),
        "{err}"
    );
    let mut b = Bundle::new("notfound", "true");
    b.spec["process"]["args"] = json!(["no-such-command"]);
    let (code, _, err) = b.run();
    assert_ne!(code, 0);
    assert!(err.contains("executable file not found in $PATH"), "{err}");
}
