//! Namespaces, root filesystem, /dev, masked and read-only paths, sysctls,
//! hostname, cgroups — checked from inside the container. Root only.

mod common;

use common::Bundle;
use serde_json::json;

#[test]
fn hostname_domainname_and_namespaces() {
    let mut b = Bundle::new(
        "uts",
        "hostname; cat /proc/sys/kernel/domainname; echo $$; ls /proc/self/ns/",
    );
    b.spec["hostname"] = json!("box1");
    b.spec["domainname"] = json!("example.test");
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "box1");
    assert_eq!(lines[1], "example.test");
    assert_eq!(lines[2], "1", "pid namespace: sh is pid 1");
    for ns in ["net", "ipc", "uts", "mnt", "pid", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert!(out.contains(ns), "{out}");
        let _ = host;
    }
}

#[test]
fn network_namespace_is_empty() {
    let b = Bundle::new(
        "netns",
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
    );
    assert_eq!(b.run_ok().trim(), "lo");
}

#[test]
fn readonly_root_masked_and_readonly_paths() {
    // Masked files the kernel has (/proc/keys needs CONFIG_KEYS): a masked path that
    // does not exist is left alone, as runc leaves it.
    let masked: Vec<&str> = ["/proc/keys", "/proc/timer_list"]
        .into_iter()
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    if masked.len() < 2 {
        eprintln!("skipped: masking of the /proc files this kernel lacks (it has {masked:?})");
    }
    let mut b = Bundle::new(
        "ro",
        &format!(
            "touch /x 2>&1; echo masked:$(cat {} /dev/null 2>&1 | wc -c); ls /sys/firmware | wc -l; \
             (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1; touch /dev/shm/ok && echo shm-ok",
            masked.join(" ")
        ),
    );
    b.spec["root"]["readonly"] = json!(true);
    let out = b.run_ok();
    assert!(out.contains("touch: /x: Read-only file system"), "{out}");
    assert!(out.contains("masked:0"), "{out}");
    assert!(
        out.lines().nth(2) == Some("0"),
        "masked dir is empty: {out}"
    );
    assert!(
        out.contains("Read-only file system") && out.matches("Read-only").count() >= 2,
        "{out}"
    );
    assert!(out.contains("shm-ok"), "{out}");
}

#[test]
fn mounts_bind_options_and_propagation() {
    let mut b = Bundle::new(
        "mounts",
        "cat /proc/self/mountinfo; cat /data/file; touch /data/new 2>&1; true",
    );
    let src = b.path().join("data");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("file"), "from-host\n").unwrap();
    let mounts = b.spec["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": src,
                       "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"]}),
    );
    mounts.push(
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                       "options": ["size=1m", "mode=700"]}),
    );
    b.spec["linux"]["rootfsPropagation"] = json!("rprivate");
    let out = b.run_ok();
    let data = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/data"))
        .expect("mountinfo has /data");
    let opts = data.split(' ').nth(5).unwrap();
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing in {data}");
    }
    let scratch = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/scratch"))
        .expect("/scratch");
    assert!(
        scratch.contains(" - tmpfs ") && scratch.contains("size=1024k"),
        "{scratch}"
    );
    let devpts = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/dev/pts"))
        .expect("/dev/pts");
    assert!(devpts.contains("ptmxmode=666"), "{devpts}");
    let root = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("/");
    assert!(!root.contains("shared:"), "rprivate root: {root}");
    assert!(out.contains("from-host"));
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
fn dev_has_default_and_spec_devices() {
    let mut b = Bundle::new(
        "dev",
        "ls -l /dev /dev/fuse2; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c",
    );
    b.spec["linux"]["devices"] = json!([{"path": "/dev/fuse2", "type": "c", "major": 10, "minor": 229, "fileMode": 432, "uid": 33, "gid": 33}]);
    let out = b.run_ok();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
    ] {
        assert!(out.contains(&format!(" {d}")), "{d} missing: {out}");
    }
    assert!(out.contains("ptmx -> pts/ptmx"), "{out}");
    assert!(out.contains("fd -> /proc/self/fd"), "{out}");
    assert!(
        out.contains("crw-rw----    1 www-data www-data   10, 229"),
        "{out}"
    );
    assert!(out.contains("null-ok"));
    assert!(out.trim_end().ends_with('4'));
}

#[test]
fn sysctls_are_written() {
    let mut b = Bundle::new(
        "sysctl",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax",
    );
    b.spec["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"});
    assert_eq!(b.run_ok().lines().collect::<Vec<_>>(), ["1", "4096"]);
}

#[test]
fn user_namespace_maps_ids() {
    let mut b = Bundle::new(
        "userns",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; ls /dev/null",
    );
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // As with runc, the container's root (host uid 100000) must be able to reach the
    // rootfs: the bundle's temp dir is 0700 root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = b.run_ok();
    let maps: Vec<Vec<&str>> = out
        .lines()
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(maps[0], ["0", "100000", "65536"]);
    assert_eq!(maps[1], ["0", "100000", "65536"]);
    assert_eq!(out.lines().nth(2), Some("0"));
    assert!(out.contains("/dev/null"));
}

#[test]
fn joins_namespaces_by_path() {
    // A first container holds a network namespace; a second one joins it by path.
    let holder = Bundle::new("nsholder", "ip link set lo up 2>/dev/null; sleep 30");
    holder.write();
    // Detached, the container keeps the stdio it is given: null, so that waiting for
    // this command does not wait for the container.
    let st = holder
        .cli()
        .args(["run", "--detach", "--bundle"])
        .arg(holder.path())
        .arg(&holder.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("berth-runtime run --detach");
    assert!(st.success(), "run --detach: {st}");
    let st: serde_json::Value =
        serde_json::from_str(&holder.cmd(&["state", &holder.id]).1).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let host_netns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut b = Bundle::new("nsjoin", "readlink /proc/self/ns/net");
    for ns in b.spec["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    assert_eq!(b.run_ok().trim(), host_netns.to_str().unwrap());
}

#[test]
fn cgroup_limits_visible_inside_and_removed_after() {
    let mut b = Bundle::new(
        "cgroup",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.soft_limit_in_bytes \
         /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us \
         /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null; \
         grep -c . /proc/self/cgroup; cat /sys/fs/cgroup/devices/devices.list | head -3",
    );
    b.spec["linux"]["resources"] = json!({
        "memory": {"limit": 67108864, "reservation": 33554432},
        "pids": {"limit": 50},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}]
    });
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "67108864");
    assert_eq!(lines[1], "33554432");
    assert_eq!(lines[2], "50");
    assert_eq!(lines[3], "512");
    assert_eq!(lines[4], "50000");
    assert_eq!(lines[5], "0");
    assert!(out.contains("c 10:200 rw"), "{out}");
    assert!(!out.contains("a *:* rwm"), "deny-all applied: {out}");
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer"] {
        assert!(
            !b.cgroup_dir(ctrl).exists(),
            "{ctrl} cgroup removed after run"
        );
    }
}

/// A block I/O weight lands in the weight file the host has (BFQ's
/// blkio.bfq.weight, or CFQ's blkio.weight), seen from inside; a host without either
/// (no BFQ, as on most servers) refuses it with an error saying so, not with the
/// EACCES of writing a missing cgroupfs file, and leaves no cgroup. The other kind
/// of host is covered by the unit tests of `cgroups::blkio` (a temp dir stands in
/// for the cgroup).
#[test]
fn blkio_weight_applied_or_refused_by_name() {
    berth_fixtures::require_root();
    let weight_file = berth_fixtures::cgroups::blkio_weight_file();
    let mut b = Bundle::new(
        "blkio",
        &format!(
            "cat /sys/fs/cgroup/blkio/{}",
            weight_file.as_deref().unwrap_or("blkio.weight")
        ),
    );
    b.spec["linux"]["resources"] = json!({"blockIO": {"weight": 300}});
    match weight_file {
        Ok(file) => {
            eprintln!(
                "skipped: the refusal on a host without a weight file (this host has {file}; \
                 cgroups::blkio's unit tests cover it)"
            );
            assert_eq!(b.run_ok().trim(), "300", "{file}");
        }
        Err(why) => {
            eprintln!("skipped: applying a block I/O weight ({why})");
            let (code, out, err) = b.run();
            assert_ne!(code, 0, "out={out} err={err}");
            assert!(
                err.contains("blockIO.weight")
                    && err.contains("no block I/O weight support")
                    && !err.contains("Permission denied"),
                "{err}"
            );
        }
    }
    assert!(!b.cgroup_dir("blkio").exists(), "blkio cgroup removed");
}

#[test]
fn memory_limit_is_enforced() {
    let mut b = Bundle::new(
        "oomkill",
        "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null && echo survived",
    );
    b.spec["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}});
    let (code, out, err) = b.run();
    // dd reads into one 64 MiB buffer, touching every page: over the 16 MiB limit
    // (swap included) the kernel's OOM killer ends it, so `survived` is never printed.
    assert!(!out.contains("survived"), "out={out} code={code} err={err}");
    // The same command without the limit does finish: the limit is what stopped it.
    let free = Bundle::new(
        "oomfree",
        "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null && echo survived",
    );
    assert!(free.run_ok().contains("survived"));
}
