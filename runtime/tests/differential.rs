//! Differential test: each bundle configuration of a table runs under Debian's `runc`
//! and under `berth-runtime`; what the container observes from inside (ids, caps,
//! NoNewPrivs, seccomp, env, cwd, hostname, rlimits, mounts, masked and read-only
//! paths, cgroup limits, the exit code) must be the same. Root only.

mod common;

use std::process::{Command, Stdio};

use common::{decode, Bundle};
use serde_json::{json, Value};

/// What every case prints besides its own lines: the identity and the security state.
const PROBE: &str = "id; umask; pwd; hostname; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; \
     env | grep -v '^HOSTNAME=' | sort; ulimit -n; ulimit -Hn; \
     awk '{ split($0, a, \" - \"); split(a[2], b, \" \"); print $5, $6, b[1] }' /proc/self/mountinfo | sort; \
     cat /proc/keys /proc/timer_list 2>&1 | wc -c; ls /sys/firmware | wc -l";

struct Case {
    name: &'static str,
    script: &'static str,
    tweak: fn(&mut Value),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "defaults",
            script: "",
            tweak: |_| {},
        },
        Case {
            name: "user-env-cwd",
            script: "touch /tmp/f && stat -c '%a %u %g' /tmp/f",
            tweak: |s| {
                s["process"]["user"] =
                    json!({"uid": 33, "gid": 33, "additionalGids": [100, 65534], "umask": 23});
                s["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY="]);
                s["process"]["cwd"] = json!("/var/www/new");
            },
        },
        Case {
            name: "caps-ambient-nonroot",
            script: "",
            tweak: |s| {
                let c = json!(["CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"]);
                s["process"]["user"] = json!({"uid": 65534, "gid": 65534});
                s["process"]["capabilities"] = json!({"bounding": c, "effective": c,
                    "permitted": c, "inheritable": c, "ambient": ["CAP_NET_RAW"]});
            },
        },
        Case {
            name: "caps-none-nnp-off",
            script: "",
            tweak: |s| {
                s["process"]["capabilities"] = json!({});
                s["process"]["noNewPrivileges"] = json!(false);
            },
        },
        Case {
            name: "hostname",
            // domainname is not compared: Debian's runc 1.1 predates it (it leaves
            // "(none)"); isolation.rs checks it.
            script: "cat /proc/sys/kernel/hostname",
            tweak: |s| {
                s["hostname"] = json!("diff-host");
            },
        },
        Case {
            name: "rlimits",
            script: "ulimit -c; ulimit -Hc; ulimit -u; ulimit -s",
            tweak: |s| {
                s["process"]["rlimits"] = json!([
                    {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
                    {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
                    {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608}
                ]);
            },
        },
        Case {
            name: "readonly-root",
            script: "touch /x 2>&1; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1; \
                     touch /dev/shm/ok && echo shm-ok; cat /etc/hostname-none 2>&1",
            tweak: |s| {
                s["root"]["readonly"] = json!(true);
            },
        },
        Case {
            name: "masked-and-readonly-paths",
            script: "cat /etc/group | wc -c; ls /var 2>&1 | wc -l; touch /tmp/ro 2>&1",
            tweak: |s| {
                let masked = s["linux"]["maskedPaths"].as_array_mut().unwrap();
                masked.push(json!("/etc/group"));
                masked.push(json!("/var"));
                masked.push(json!("/does/not/exist"));
                let ro = s["linux"]["readonlyPaths"].as_array_mut().unwrap();
                ro.push(json!("/tmp"));
            },
        },
        Case {
            name: "mounts",
            script: "cat /data/file; touch /data/new 2>&1; touch /scratch/x && stat -c '%a' /scratch; \
                     grep -E ' /(data|scratch|ro-tmp) ' /proc/self/mountinfo | cut -d' ' -f5,6",
            tweak: |s| {
                let m = s["mounts"].as_array_mut().unwrap();
                m.push(json!({"destination": "/data", "type": "bind", "source": "DATA",
                    "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"]}));
                m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                    "options": ["size=1m", "mode=700", "nosuid"]}));
                m.push(json!({"destination": "/ro-tmp", "type": "tmpfs", "source": "tmpfs",
                    "options": ["ro", "nodev"]}));
                s["linux"]["rootfsPropagation"] = json!("rprivate");
            },
        },
        Case {
            name: "cgroup-limits",
            script: "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.soft_limit_in_bytes \
                     /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us \
                     /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpuset/cpuset.cpus; \
                     cat /proc/self/cgroup | cut -d: -f2,3 | sort",
            tweak: |s| {
                s["linux"]["resources"] = json!({
                    "memory": {"limit": 67108864, "reservation": 33554432},
                    "pids": {"limit": 50},
                    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
                    "devices": [{"allow": false, "access": "rwm"}]
                });
            },
        },
        Case {
            name: "seccomp-errno",
            script: "mkdir /tmp/d 2>&1; echo mkdir=$?; ln -s a /tmp/l 2>&1; echo ln=$?; \
                     touch /tmp/t && echo touch-ok",
            tweak: |s| {
                s["linux"]["seccomp"] = json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                    "syscalls": [
                        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                        {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO"}
                    ]
                });
            },
        },
        Case {
            name: "dev",
            script: "ls -l /dev /dev/pts | awk '{print $1, $3, $4, $5, $6, $NF}'; \
                     head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; \
                     head -c 1 /dev/fuse 2>&1 | head -1",
            tweak: |s| {
                s["linux"]["devices"] = json!([
                    {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                     "fileMode": 438, "uid": 0, "gid": 0}
                ]);
                s["linux"]["resources"]["devices"] = json!([
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
                ]);
            },
        },
        Case {
            name: "exit-code",
            script: "exit 42",
            tweak: |_| {},
        },
    ]
}

/// Runs the bundle under `runc` with its own state root, id and cgroup.
fn run_runc(b: &mut Bundle) -> (i32, String, String) {
    let id = format!("{}-runc", b.id);
    let saved = b.spec["linux"]["cgroupsPath"].clone();
    // Under the bundle's parent, which the bundle removes on drop.
    b.spec["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", b.cgroup_parent()));
    b.write();
    b.spec["linux"]["cgroupsPath"] = saved;
    let root = b.path().join("runc-state");
    let out = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .expect("running runc");
    let _ = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", &id])
        .output();
    decode(out)
}

/// Replaces what legitimately differs between two runs (the container ids).
fn normalise(text: &str, b: &Bundle) -> String {
    text.replace(&format!("{}-runc", b.id), "<ID>")
        .replace(&b.id, "<ID>")
}

#[test]
fn runc_and_berth_runtime_observe_the_same() {
    let mut failures = Vec::new();
    for case in cases() {
        let script = if case.script.is_empty() {
            PROBE.to_string()
        } else {
            format!("{PROBE}; echo ---; {}", case.script)
        };
        let mut b = Bundle::new(&format!("diff-{}", case.name), &script);
        (case.tweak)(&mut b.spec);
        // Paths the table refers to symbolically.
        let data = b.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("file"), "from-host\n").unwrap();
        for m in b.spec["mounts"].as_array_mut().unwrap() {
            if m["source"] == "DATA" {
                m["source"] = json!(data);
            }
        }
        let (rc, rout, rerr) = run_runc(&mut b);
        // Undo what the runc run may have left in the shared rootfs.
        for p in ["tmp/f", "tmp/d", "tmp/l", "tmp/t", "var/www/new"] {
            let p = b.path().join("rootfs").join(p);
            let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
        }
        let (bc, bout, berr) = b.run();
        let (rout, bout) = (normalise(&rout, &b), normalise(&bout, &b));
        if rc != bc || rout != bout {
            let (rf, bf) = (b.path().join("out.runc"), b.path().join("out.berth"));
            std::fs::write(&rf, &rout).unwrap();
            std::fs::write(&bf, &bout).unwrap();
            let diff = Command::new("diff").arg("-u").arg(&rf).arg(&bf).output();
            let diff = diff.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            failures.push(format!(
                "case {}: exit runc={rc} berth={bc}\n{}\n  runc stderr: {rerr}\n  berth stderr: {berr}",
                case.name,
                diff.unwrap_or_default()
            ));
        }
        // Sanity: the probe did run (a case where both fail the same way to start
        // would otherwise compare equal).
        assert!(
            rout.contains("uid="),
            "case {}: runc printed {rout:?} ({rerr})",
            case.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
