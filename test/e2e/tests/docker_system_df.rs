//! `GET /system/df` and the prunes through Debian's docker 20.10 client and the Python
//! docker SDK: the sizes match `find`'s count of the backing directories (files and
//! links, each inode once, as dockerd counts), shared layers and users are counted,
//! and each prune frees what it says it freed.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};
use serde_json::Value;

/// The bytes under `dir` by `find` (not berth's code): everything but directories,
/// each inode once.
fn find_size(dir: &Path) -> Result<u64> {
    let out = run_ok(
        Command::new("find")
            .arg(dir)
            .args(["!", "-type", "d", "-printf", "%i %s\n"]),
    )?;
    let mut seen = std::collections::HashSet::new();
    Ok(out
        .lines()
        .filter(|l| seen.insert(l.split(' ').next().unwrap_or_default().to_string()))
        .filter_map(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
        .sum())
}

fn system_df(berthd: &Berthd) -> Result<Value> {
    let out = run_ok(Command::new("curl").args([
        "-sf",
        "--unix-socket",
        &berthd.docker_socket().display().to_string(),
        "http://berth/v1.41/system/df",
    ]))?;
    serde_json::from_str(&out).context("system df")
}

/// go-units' `HumanSize`, which the docker CLI prints reclaimed space with.
fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // `%.4g`: four significant digits, trailing zeros dropped.
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

fn by_name<'a>(list: &'a Value, field: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|e| match &e[field] {
        Value::Array(names) => names.iter().any(|n| n == name),
        v => v == name,
    })
}

#[test]
fn system_df_matches_du_and_prunes_free_what_they_say() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    // One layer under two images (their configs differ by a label).
    let fixture = tempfile::tempdir()?;
    let rootfs = fixture.path().join("rootfs");
    berth_fixtures::busybox_rootfs(&rootfs)?;
    let tar = fixture.path().join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    run_ok(berthd.berth()?.arg("import").arg(&tar).arg("busybox"))?;
    run_ok(
        berthd
            .berth()?
            .args(["import", "--change", "LABEL second=yes"])
            .arg(&tar)
            .arg("bb2"),
    )?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "fat",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1024",
        "count=300",
    ]))?;
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "live", "busybox", "sleep", "300"]),
    )?;
    run_ok(berthd.docker().args(["volume", "create", "v1"]))?;
    run_ok(berthd.docker().args(["volume", "create", "idle"]))?;
    run_ok(berthd.docker().args([
        "run",
        "--rm",
        "-v",
        "v1:/d",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/d/f bs=1024 count=200 && ln /d/f /d/hard && ln -s f /d/soft",
    ]))?;

    let df = system_df(&berthd)?;
    // Containers: the writable layer, by find.
    let fat = by_name(&df["Containers"], "Names", "/fat").context("fat in df")?;
    let upper =
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", "fat"]),
        )?;
    let fat_rw = find_size(Path::new(upper.trim()))?;
    assert!(fat_rw >= 300 * 1024, "{fat_rw}");
    assert_eq!(fat["SizeRw"].as_u64(), Some(fat_rw), "{fat}");
    // Volumes: the data directory by find (the hard link once), with its users.
    let v1 = by_name(&df["Volumes"], "Name", "v1").context("v1 in df")?;
    let v1_size = find_size(&berthd.root().join("volumes/v1/_data"))?;
    assert_eq!(
        v1_size,
        200 * 1024 + 1,
        "the file once and the link's own size"
    );
    assert_eq!(v1["UsageData"]["Size"].as_u64(), Some(v1_size), "{v1}");
    assert_eq!(v1["UsageData"]["RefCount"].as_u64(), Some(0));
    // Images: both made from the same layer share all of it; one has two containers.
    let bb = by_name(&df["Images"], "RepoTags", "busybox:latest").context("busybox")?;
    let bb2 = by_name(&df["Images"], "RepoTags", "bb2:latest").context("bb2")?;
    assert_eq!(bb["Containers"].as_u64(), Some(2), "{bb}");
    assert_eq!(bb2["Containers"].as_u64(), Some(0), "{bb2}");
    assert!(bb["Size"].as_u64().unwrap_or(0) > 0);
    assert_eq!(bb["SharedSize"], bb["Size"], "{bb}");
    assert_eq!(df["LayersSize"], bb["Size"], "one layer, counted once");
    assert_eq!(df["BuildCache"], serde_json::json!([]));
    // The docker CLI reads it.
    let text = run_ok(berthd.docker().args(["system", "df"]))?;
    assert!(text.contains("Local Volumes"), "{text}");
    let verbose = run_ok(berthd.docker().args(["system", "df", "-v"]))?;
    assert!(
        verbose.contains("v1") && verbose.contains("fat"),
        "{verbose}"
    );

    // Prunes say what they freed, and free it.
    let fat_id = run_ok(berthd.docker().args(["inspect", "-f", "{{.Id}}", "fat"]))?;
    let out = run_ok(berthd.docker().args(["container", "prune", "-f"]))?;
    assert!(out.contains(fat_id.trim()), "{out}");
    assert!(
        out.contains(&format!("Total reclaimed space: {}", human_size(fat_rw))),
        "{out}"
    );
    assert!(
        !Path::new(upper.trim()).exists(),
        "the writable layer is gone"
    );
    let out = run_ok(berthd.docker().args(["volume", "prune", "-f"]))?;
    assert!(out.contains("v1") && out.contains("idle"), "{out}");
    assert!(
        out.contains(&format!("Total reclaimed space: {}", human_size(v1_size))),
        "{out}"
    );
    // bb2 goes (nothing uses it) but its layer is busybox's too: nothing is freed.
    let out = run_ok(berthd.docker().args(["image", "prune", "-a", "-f"]))?;
    assert!(out.contains("untagged: bb2:latest"), "{out}");
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    let df = system_df(&berthd)?;
    assert_eq!(df["Volumes"], serde_json::json!([]));
    assert_eq!(df["Images"].as_array().map(Vec::len), Some(1));
    assert_eq!(df["Containers"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn prune_filters_keep_what_they_exclude() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for (name, label) in [("keep", "keep=yes"), ("drop", "keep=no")] {
        run_ok(berthd.docker().args([
            "create", "--name", name, "--label", label, "busybox", "true",
        ]))?;
    }
    let out =
        run_ok(
            berthd
                .docker()
                .args(["container", "prune", "-f", "--filter", "label=keep=no"]),
        )?;
    assert!(out.contains("Total reclaimed space"), "{out}");
    let left = run_ok(berthd.docker().args(["ps", "-a", "--format", "{{.Names}}"]))?;
    assert_eq!(left.trim(), "keep");
    // Made just now: not before an hour ago.
    let out = run_ok(
        berthd
            .docker()
            .args(["container", "prune", "-f", "--filter", "until=1h"]),
    )?;
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    let left = run_ok(berthd.docker().args(["ps", "-a", "--format", "{{.Names}}"]))?;
    assert_eq!(left.trim(), "keep");
    Ok(())
}

#[test]
fn python_sdk_volumes_and_df() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
v = c.volumes.create(name="sdkvol", labels={"team": "a"})
assert v.name == "sdkvol", v.attrs
assert c.volumes.get("sdkvol").attrs["Labels"] == {"team": "a"}
t = c.volumes.create(name="sdktmp", driver="local",
                     driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=2m"})
assert t.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"}, t.attrs
out = c.containers.run("busybox", ["sh", "-c", "echo kept > /data/f; grep ' /t ' /proc/mounts"],
                       volumes={"sdkvol": {"bind": "/data", "mode": "rw"},
                                "sdktmp": {"bind": "/t", "mode": "rw"}},
                       remove=True)
assert b"tmpfs" in out and b"size=2048k" in out, out
out = c.containers.run("busybox", ["cat", "/data/f"], volumes=["sdkvol:/data:ro"], remove=True)
assert out == b"kept\n", out
names = sorted(v.name for v in c.volumes.list(filters={"label": "team=a"}))
assert names == ["sdkvol"], names
df = c.df()
sizes = {v["Name"]: v["UsageData"]["Size"] for v in df["Volumes"]}
assert sizes["sdkvol"] == 5, sizes
c.volumes.get("sdktmp").remove()
pruned = c.volumes.prune()
assert pruned["VolumesDeleted"] == ["sdkvol"] and pruned["SpaceReclaimed"] == 5, pruned
assert c.volumes.list() == []
print("ok")
"#;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("volumes.py");
    std::fs::write(&path, script)?;
    let out = run_ok(Command::new("python3").arg(&path).arg(berthd.docker_host()))
        .with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(out.trim(), "ok");
    Ok(())
}

#[test]
fn berth_system_df_agrees_with_docker_and_system_prune_frees_what_it_says() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "gone",
        "-v",
        "vv:/d",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1024 count=100 && dd if=/dev/zero of=/d/f bs=1024 count=50",
    ]))?;
    run_ok(berthd.docker().args(["rm", "gone"]))?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "gone2",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1024",
        "count=100",
    ]))?;
    // The same figures as docker's own CLI computes from the same answer.
    for args in [
        &["system", "df"][..],
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}:{{.TotalCount}}:{{.Active}}:{{.Size}}:{{.Reclaimable}}",
        ],
    ] {
        let ours = run_ok(berthd.berth()?.args(args))?;
        let theirs = run_ok(berthd.docker().args(args))?;
        assert_eq!(ours, theirs, "{args:?}");
    }
    let verbose = run_ok(berthd.berth()?.args(["system", "df", "-v"]))?;
    assert!(
        verbose.contains("vv") && verbose.contains("gone2"),
        "{verbose}"
    );

    let (code, _, err) = berth_e2e::run(berthd.berth()?.args(["system", "prune"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("-f/--force"), "{err}");
    let df = system_df(&berthd)?;
    let rw = by_name(&df["Containers"], "Names", "/gone2").context("gone2")?["SizeRw"]
        .as_u64()
        .unwrap_or(0);
    let vol = by_name(&df["Volumes"], "Name", "vv").context("vv")?["UsageData"]["Size"]
        .as_u64()
        .unwrap_or(0);
    let image = df["LayersSize"].as_u64().unwrap_or(0);
    assert!(rw >= 100 * 1024 && vol == 50 * 1024 && image > 0, "{df}");
    // Stopped containers and dangling images (none); the volume stays.
    let out = run_ok(berthd.berth()?.args(["system", "prune", "-f"]))?;
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(
        out.ends_with(&format!("Total reclaimed space: {}\n", human_size(rw))),
        "{out}"
    );
    let names = run_ok(berthd.docker().args(["volume", "ls", "-q"]))?;
    assert_eq!(names.trim(), "vv");
    // With --volumes and -a: the volume and the image, now unused.
    let out = run_ok(
        berthd
            .berth()?
            .args(["system", "prune", "-f", "-a", "--volumes"]),
    )?;
    assert!(out.contains("Deleted Volumes:\nvv\n"), "{out}");
    assert!(out.contains("untagged: busybox:latest"), "{out}");
    assert!(
        out.ends_with(&format!(
            "Total reclaimed space: {}\n",
            human_size(vol + image)
        )),
        "{out}"
    );
    let df = system_df(&berthd)?;
    assert_eq!(df["LayersSize"], 0, "{df}");
    assert_eq!(df["Volumes"], serde_json::json!([]));
    Ok(())
}

/// Debian's docker 20.10 `system prune -f` (which calls `/containers/prune`,
/// `/networks/prune`, `/images/prune` and `/build/prune`) and `-a --volumes`: what it
/// lists is gone, what it keeps is there, and the total it prints is what `system df`
/// said those objects took.
#[test]
fn docker_cli_system_prune_frees_what_it_says() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "gone",
        "-v",
        "vv:/d",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/d/f",
        "bs=1024",
        "count=70",
    ]))?;
    run_ok(berthd.docker().args(["rm", "gone"]))?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "stopped",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1024",
        "count=120",
    ]))?;
    let stopped = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.Id}}", "stopped"]),
    )?;
    run_ok(berthd.docker().args(["network", "create", "unused-net"]))?;
    run_ok(berthd.docker().args(["network", "create", "used-net"]))?;
    let running = run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "running",
        "--network",
        "used-net",
        "busybox",
        "sleep",
        "1000",
    ]))?;

    let df = system_df(&berthd)?;
    let rw = by_name(&df["Containers"], "Names", "/stopped").context("stopped")?["SizeRw"]
        .as_u64()
        .unwrap_or(0);
    let vol = by_name(&df["Volumes"], "Name", "vv").context("vv")?["UsageData"]["Size"]
        .as_u64()
        .unwrap_or(0);
    assert!(rw >= 120 * 1024 && vol == 70 * 1024, "{df}");

    let out = run_ok(berthd.docker().args(["system", "prune", "-f"]))?;
    assert!(
        out.contains(&format!("Deleted Containers:\n{}\n", stopped.trim())),
        "{out}"
    );
    assert!(out.contains("Deleted Networks:\nunused-net\n"), "{out}");
    assert!(!out.contains("Deleted Volumes"), "{out}");
    assert!(
        out.ends_with(&format!("Total reclaimed space: {}\n", human_size(rw))),
        "{out}"
    );
    let ps = run_ok(berthd.docker().args(["ps", "-aq", "--no-trunc"]))?;
    assert_eq!(ps.trim(), running.trim());
    let nets = run_ok(
        berthd
            .docker()
            .args(["network", "ls", "--format", "{{.Name}}"]),
    )?;
    assert!(nets.lines().any(|n| n == "used-net"), "{nets}");
    assert!(!nets.lines().any(|n| n == "unused-net"), "{nets}");
    assert_eq!(
        run_ok(berthd.docker().args(["volume", "ls", "-q"]))?.trim(),
        "vv"
    );

    // -a --volumes: the now unused volume, and no image while a container uses it.
    let out = run_ok(
        berthd
            .docker()
            .args(["system", "prune", "-f", "-a", "--volumes"]),
    )?;
    assert!(out.contains("Deleted Volumes:\nvv\n"), "{out}");
    assert!(!out.contains("untagged: busybox"), "{out}");
    assert!(
        out.ends_with(&format!("Total reclaimed space: {}\n", human_size(vol))),
        "{out}"
    );
    assert_eq!(
        run_ok(berthd.docker().args(["volume", "ls", "-q"]))?.trim(),
        ""
    );
    // Once nothing uses it, the image goes too, with everything it took.
    run_ok(berthd.docker().args(["rm", "-f", "running"]))?;
    let image = system_df(&berthd)?["LayersSize"].as_u64().unwrap_or(0);
    assert!(image > 0);
    let out = run_ok(
        berthd
            .docker()
            .args(["system", "prune", "-f", "-a", "--volumes"]),
    )?;
    assert!(
        out.contains("Deleted Images:\nuntagged: busybox:latest\n"),
        "{out}"
    );
    assert!(out.contains("Deleted Networks:\nused-net\n"), "{out}");
    assert!(
        out.ends_with(&format!("Total reclaimed space: {}\n", human_size(image))),
        "{out}"
    );
    let df = system_df(&berthd)?;
    assert_eq!(df["LayersSize"], 0, "{df}");
    assert_eq!(df["Images"], serde_json::json!([]), "{df}");
    Ok(())
}
