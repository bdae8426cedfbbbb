//! The CLI lifecycle as containerd and Podman drive it: create, start, state, exec
//! (--process JSON), pause/resume, ps, kill by signal name, delete; hooks with the
//! state on stdin and timeouts; features; --systemd-cgroup refused. Root only.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Bundle;
use serde_json::{json, Value};

fn state(b: &Bundle) -> Value {
    let (code, out, err) = b.cmd(&["state", &b.id]);
    assert_eq!(code, 0, "state: {err}");
    serde_json::from_str(&out).expect("state is JSON")
}

fn wait_status(b: &Bundle, want: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let st = state(b);
        if st["status"] == want {
            return;
        }
        assert!(Instant::now() < end, "status never became {want}: {st}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_start_exec_pause_kill_delete() {
    let b = Bundle::new("life", "while true; do sleep 0.1; done");
    b.write();
    let st = b
        .cli()
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&b.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("create");
    assert!(st.success(), "create: {st}");
    let s = state(&b);
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["id"], b.id.as_str());
    let pid = s["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    assert_eq!(s["bundle"], b.path().to_str().unwrap());

    let (code, _, err) = b.cmd(&["start", &b.id]);
    assert_eq!(code, 0, "start: {err}");
    wait_status(&b, "running");

    // exec --process: the process JSON's args, env and cwd are used.
    let proc_json = b.path().join("process.json");
    std::fs::write(
        &proc_json,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo exec:$FOO:$(pwd):$(id -u)"],
            "env": ["PATH=/bin", "FOO=from-json"],
            "cwd": "/etc",
            "user": {"uid": 33, "gid": 33}
        }))
        .unwrap(),
    )
    .unwrap();
    let (code, out, err) = b.cmd(&["exec", "--process", proc_json.to_str().unwrap(), &b.id]);
    assert_eq!(code, 0, "exec: {err}");
    assert_eq!(out.trim(), "exec:from-json:/etc:33");
    // The exit code of an exec'd process is exec's.
    let (code, _, _) = b.cmd(&["exec", &b.id, "sh", "-c", "exit 5"]);
    assert_eq!(code, 5);
    // The exec'd process is in the init's pid namespace (the runtime's thread joins it
    // before fork), and sees itself there, not as the host pid.
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("init's pid ns");
    let (code, out, err) = b.cmd(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; echo $$",
    ]);
    assert_eq!(code, 0, "exec: {err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), init_ns.to_str(), "{out}");
    let inner: i64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("a pid");
    assert!(
        inner > 1 && inner < 1000,
        "pid in the container's namespace: {inner}"
    );

    let (code, _, err) = b.cmd(&["pause", &b.id]);
    assert_eq!(code, 0, "pause: {err}");
    assert_eq!(state(&b)["status"], "paused");
    let frozen = std::fs::read_to_string(b.cgroup_dir("freezer").join("freezer.state")).unwrap();
    assert_eq!(frozen.trim(), "FROZEN");
    let (code, _, err) = b.cmd(&["resume", &b.id]);
    assert_eq!(code, 0, "resume: {err}");
    assert_eq!(state(&b)["status"], "running");

    // update --resources: new limits land in the container's cgroup; bad JSON is an
    // error that says so.
    let res_json = b.path().join("resources.json");
    std::fs::write(
        &res_json,
        r#"{"memory": {"limit": 67108864}, "pids": {"limit": 77}}"#,
    )
    .unwrap();
    let (code, _, err) = b.cmd(&["update", "--resources", res_json.to_str().unwrap(), &b.id]);
    assert_eq!(code, 0, "update: {err}");
    let limit = std::fs::read_to_string(b.cgroup_dir("memory").join("memory.limit_in_bytes"));
    assert_eq!(limit.unwrap().trim(), "67108864");
    let pids_max = std::fs::read_to_string(b.cgroup_dir("pids").join("pids.max"));
    assert_eq!(pids_max.unwrap().trim(), "77");
    std::fs::write(&res_json, "{not json").unwrap();
    let (code, _, err) = b.cmd(&["update", "--resources", res_json.to_str().unwrap(), &b.id]);
    assert_ne!(code, 0);
    assert!(err.contains("LinuxResources"), "{err}");

    let (code, out, err) = b.cmd(&["ps", "--format", "json", &b.id]);
    assert_eq!(code, 0, "ps: {err}");
    let pids: Vec<i64> = serde_json::from_str(&out).expect("ps json");
    assert!(pids.contains(&pid), "{pids:?} has {pid}");

    // A running container cannot be deleted without --force.
    let (code, _, err) = b.cmd(&["delete", &b.id]);
    assert_ne!(code, 0);
    assert!(err.contains("running"), "{err}");

    let (code, _, err) = b.cmd(&["kill", &b.id, "NOSUCHSIG"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("NOSUCHSIG"),
        "the error names the signal: {err}"
    );
    // Signal names with or without SIG, and numbers; --all reaches every process.
    let (code, _, err) = b.cmd(&["kill", &b.id, "SIGCONT"]);
    assert_eq!(code, 0, "kill SIGCONT: {err}");
    let (code, _, err) = b.cmd(&["kill", "--all", &b.id, "9"]);
    assert_eq!(code, 0, "kill --all 9: {err}");
    wait_status(&b, "stopped");
    let (code, _, err) = b.cmd(&["delete", &b.id]);
    assert_eq!(code, 0, "delete: {err}");
    let (code, _, err) = b.cmd(&["state", &b.id]);
    assert_ne!(code, 0);
    assert!(
        err.contains("does not exist") || err.contains("not found"),
        "{err}"
    );
    assert!(!b.cgroup_dir("memory").exists(), "cgroup removed by delete");
}

#[test]
fn hooks_get_the_state_and_run_in_order() {
    let mut b = Bundle::new("hooks", "echo body");
    let log = b.path().join("hooks.log");
    let hook_to = |name: &str, log: &std::path::Path| {
        json!({"path": "/bin/sh",
               "args": ["sh", "-c", format!("read -r s; echo {name} \"$s\" >> {}", log.display())]})
    };
    let hook = |name: &str| hook_to(name, &log);
    b.spec["hooks"] = json!({
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        // startContainer runs inside the container, after pivot_root: its /
        // is the rootfs.
        "startContainer": [hook_to("startContainer", std::path::Path::new("/start.log"))],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    assert_eq!(b.run_ok().trim(), "body");
    let inside = std::fs::read_to_string(b.path().join("rootfs/start.log")).unwrap();
    assert!(inside.starts_with("startContainer {"), "{inside}");
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        order,
        ["createRuntime", "createContainer", "poststart", "poststop"],
        "{text}"
    );
    for line in text.lines().chain(inside.lines()) {
        let (_, js) = line.split_once(' ').unwrap();
        let st: Value = serde_json::from_str(js).expect("hook stdin is the state JSON");
        assert_eq!(st["id"], b.id.as_str(), "{line}");
        assert!(st["ociVersion"].is_string(), "{line}");
    }
}

#[test]
fn hook_timeout_fails_create_cleanly() {
    let mut b = Bundle::new("hooktimeout", "echo never");
    b.spec["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]
    });
    let t = Instant::now();
    let (code, out, err) = b.run();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the timeout ended the hook"
    );
    assert_ne!(code, 0);
    assert!(!out.contains("never"), "{out}");
    assert!(
        err.contains("createRuntime") && err.contains("timed out"),
        "the error names the hook and why: {err}"
    );
    for ctrl in ["memory", "pids", "freezer"] {
        assert!(!b.cgroup_dir(ctrl).exists(), "{ctrl} cgroup left behind");
    }
    assert!(!b.root().join(&b.id).exists(), "state left behind");
}

#[test]
fn features_and_systemd_cgroup() {
    let b = Bundle::new("features", "true");
    let (code, out, err) = b.cmd(&["features"]);
    assert_eq!(code, 0, "{err}");
    let f: Value = serde_json::from_str(&out).expect("features JSON");
    assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1."));
    let ns = f["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.contains(&json!("user")) && ns.contains(&json!("cgroup")));
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);

    b.write();
    let (code, _, err) = decode_run(&b, &["--systemd-cgroup", "run", "--bundle"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("systemd") && err.contains("not supported"),
        "{err}"
    );
}

fn decode_run(b: &Bundle, args: &[&str]) -> (i32, String, String) {
    let out = b
        .cli()
        .args(args)
        .arg(b.path())
        .arg(&b.id)
        .stdin(Stdio::null())
        .output()
        .expect("berth-runtime");
    common::decode(out)
}
