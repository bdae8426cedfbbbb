//! Helpers for the root-only runtime tests: bundles built from the busybox
//! fixture, the CLI binary with a per-test state root, unique ids and cgroups.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A bundle (rootfs + config.json) and a state root, both removed on drop.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub spec: Value,
    pub id: String,
}

impl Bundle {
    /// Our default spec, running `sh -c script`, with a unique id and cgroup path.
    pub fn new(name: &str, script: &str) -> Bundle {
        berth_fixtures::require_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-")
            .tempdir()
            .expect("tempdir");
        berth_fixtures::busybox_rootfs(&dir.path().join("rootfs")).expect("busybox rootfs");
        let id = format!("{name}-{}", std::process::id());
        let mut spec = berth_runtime::spec::default_spec();
        spec["process"]["args"] = json!(["sh", "-c", script]);
        spec["root"]["readonly"] = json!(false);
        // A parent of the bundle's own (not one shared by the tests running in
        // parallel), removed on drop: the runtime makes the levels, it removes the leaf.
        spec["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", cgroup_parent(&id)));
        Bundle { dir, spec, id }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn write(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
    }

    pub fn cli(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root());
        c
    }

    /// `run` in the foreground: (exit code, stdout, stderr).
    pub fn run(&self) -> (i32, String, String) {
        self.write();
        let out = self
            .cli()
            .args(["run", "--bundle"])
            .arg(self.path())
            .arg(&self.id)
            .stdin(Stdio::null())
            .output()
            .expect("running berth-runtime");
        decode(out)
    }

    /// Runs and asserts success; returns stdout.
    pub fn run_ok(&self) -> String {
        let (code, out, err) = self.run();
        assert_eq!(code, 0, "container failed: stdout={out} stderr={err}");
        out
    }

    pub fn cmd(&self, args: &[&str]) -> (i32, String, String) {
        decode(
            self.cli()
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("berth-runtime"),
        )
    }

    /// v1 cgroup dir of a controller for this bundle.
    pub fn cgroup_dir(&self, ctrl: &str) -> PathBuf {
        PathBuf::from(format!(
            "/sys/fs/cgroup/{ctrl}/{}/{}",
            cgroup_parent(&self.id),
            self.id
        ))
    }

    /// The bundle's cgroup parent (relative to each hierarchy's root).
    pub fn cgroup_parent(&self) -> String {
        cgroup_parent(&self.id)
    }
}

fn cgroup_parent(id: &str) -> String {
    format!("berth-test-{id}")
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .args(["delete", "--force", &self.id])
            .output();
        for e in berth_fixtures::cgroups::remove(&cgroup_parent(&self.id)) {
            eprintln!("removing the test's cgroup: {e}");
        }
    }
}

pub fn decode(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of a `Key:\tvalue` line of /proc/self/status output.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}
