//! `--volumes-from` and inspect's `Mounts` through Debian's docker 20.10 client: the
//! tutorials' backup of a data container with `tar` into a bind mount and its restore
//! into a new volume, modes taken and overridden, an unknown container refused with
//! nothing made, and every mount type listed with dockerd's fields.

use anyhow::{Context, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};
use serde_json::{json, Value};

/// `docker inspect`'s `Mounts` of `container`, by destination.
fn mounts(berthd: &Berthd, container: &str) -> Result<Vec<Value>> {
    let out = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{json .Mounts}}", container]),
    )?;
    let mut list: Vec<Value> = serde_json::from_str(out.trim()).context("inspect's Mounts")?;
    list.sort_by_key(|m| m["Destination"].as_str().unwrap_or_default().to_string());
    Ok(list)
}

fn data(berthd: &Berthd, name: &str) -> String {
    berthd
        .root()
        .join("volumes")
        .join(name)
        .join("_data")
        .display()
        .to_string()
}

#[test]
fn volumes_from_backup_and_restore_with_tar() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let host = tempfile::tempdir()?;
    let shared = host.path().join("shared");
    let backup = host.path().join("backup");
    std::fs::create_dir(&shared)?;
    std::fs::create_dir(&backup)?;
    std::fs::write(shared.join("note"), "from the host\n")?;
    let shared_s = shared.display().to_string();
    let backup_s = backup.display().to_string();

    // The data container: a named volume, an anonymous one, a read-only bind, a
    // --mount tmpfs and a --tmpfs (the last is not one of dockerd's mount points).
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "dbstore",
        "-v",
        "dbvol:/dbdata",
        "-v",
        "/anon",
        "-v",
        &format!("{shared_s}:/shared:ro"),
        "--mount",
        "type=tmpfs,target=/scratch,tmpfs-size=1m",
        "--tmpfs",
        "/flagtmp",
        "busybox",
        "sh",
        "-c",
        "echo db > /dbdata/table && mkdir /dbdata/sub && echo deep > /dbdata/sub/f && echo anon > /anon/a",
    ]))?;

    // Backup through a helper container, into a bind mount.
    run_ok(berthd.docker().args([
        "run",
        "--rm",
        "--volumes-from",
        "dbstore",
        "-v",
        &format!("{backup_s}:/backup"),
        "busybox",
        "tar",
        "cf",
        "/backup/backup.tar",
        "/dbdata",
        "/anon",
        "/shared",
    ]))?;
    let listing = run_ok(
        std::process::Command::new("tar")
            .arg("tf")
            .arg(backup.join("backup.tar")),
    )?;
    for entry in ["dbdata/table", "dbdata/sub/f", "anon/a", "shared/note"] {
        assert!(listing.lines().any(|l| l == entry), "{entry} in {listing}");
    }

    // Restore into a new volume and read it back from yet another container.
    run_ok(berthd.docker().args([
        "run",
        "--rm",
        "-v",
        "restored:/dbdata",
        "-v",
        &format!("{backup_s}:/backup"),
        "busybox",
        "tar",
        "xf",
        "/backup/backup.tar",
        "-C",
        "/",
    ]))?;
    assert_eq!(
        std::fs::read_to_string(format!("{}/sub/f", data(&berthd, "restored")))?,
        "deep\n"
    );
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "-v",
        "restored:/r",
        "busybox",
        "cat",
        "/r/table",
    ]))?;
    assert_eq!(out, "db\n");

    // `:ro` makes the taken volumes read-only; the source's ro bind stays ro, its
    // --mount tmpfs comes as a new tmpfs, its --tmpfs does not come at all.
    let out = run_ok(berthd.docker().args([
        "run",
        "--name",
        "reader",
        "--volumes-from",
        "dbstore:ro",
        "busybox",
        "sh",
        "-c",
        "cat /dbdata/table /shared/note; touch /dbdata/x 2>/dev/null && echo wrote; \
         grep -q ' /scratch tmpfs ' /proc/mounts && echo scratch; \
         grep -q ' /flagtmp ' /proc/mounts && echo flagtmp; true",
    ]))?;
    assert_eq!(out, "db\nfrom the host\nscratch\n");
    let asked =
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{.HostConfig.VolumesFrom}}", "reader"]),
        )?;
    assert_eq!(asked.trim(), "[dbstore:ro]");
    // Without a mode, the source's modes: the volume writable, the bind not.
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "--volumes-from",
        "dbstore",
        "busybox",
        "sh",
        "-c",
        "touch /dbdata/x && echo wrote; touch /shared/x 2>/dev/null && echo bind-wrote; true",
    ]))?;
    assert_eq!(out, "wrote\n");
    // The container's own -v overrides the one taken at the same path.
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "--volumes-from",
        "dbstore",
        "-v",
        "restored:/dbdata",
        "busybox",
        "sh",
        "-c",
        "ls /dbdata/x 2>/dev/null || echo own",
    ]))?;
    assert_eq!(out, "own\n");

    // The taken volumes are in use by the reader too, and go with neither rm -v.
    let anon = mounts(&berthd, "dbstore")?
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .and_then(|m| m["Name"].as_str().map(str::to_string))
        .context("dbstore's anonymous volume")?;
    run_ok(berthd.docker().args(["rm", "-v", "dbstore"]))?;
    let names = run_ok(berthd.docker().args(["volume", "ls", "-q"]))?;
    assert!(names.lines().any(|n| n == anon), "{anon} kept: {names}");
    let (code, _, err) = run(berthd.docker().args(["volume", "rm", &anon]))?;
    assert_ne!(code, 0);
    assert!(err.contains("volume is in use"), "{err}");
    // The reader's Mounts: what it took, with dockerd's empty mode.
    let got = mounts(&berthd, "reader")?;
    assert_eq!(
        got,
        vec![
            json!({"Type": "volume", "Name": anon, "Source": data(&berthd, &anon),
                "Destination": "/anon", "Driver": "local", "Mode": "", "RW": false, "Propagation": ""}),
            json!({"Type": "volume", "Name": "dbvol", "Source": data(&berthd, "dbvol"),
                "Destination": "/dbdata", "Driver": "local", "Mode": "", "RW": false, "Propagation": ""}),
            json!({"Type": "tmpfs", "Source": "", "Destination": "/scratch", "Mode": "",
                "RW": false, "Propagation": ""}),
            json!({"Type": "bind", "Source": shared_s, "Destination": "/shared", "Mode": "",
                "RW": false, "Propagation": "rprivate"}),
        ]
    );
    run_ok(berthd.docker().args(["rm", "-v", "reader"]))?;
    let names = run_ok(berthd.docker().args(["volume", "ls", "-q"]))?;
    assert!(
        names.lines().any(|n| n == anon),
        "{anon} is not the reader's: {names}"
    );
    run_ok(
        berthd
            .docker()
            .args(["volume", "rm", &anon, "dbvol", "restored"]),
    )?;
    Ok(())
}

#[test]
fn volumes_from_refuses_unknown_containers_and_bad_modes() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(
        berthd
            .docker()
            .args(["create", "--name", "src", "-v", "v1:/d", "busybox", "true"]),
    )?;
    for (from, expected) in [
        ("nosuch", "No such container: nosuch"),
        ("src:rshared", "invalid mode: rshared"),
        ("src:nocopy", "invalid mode: nocopy"),
    ] {
        let (code, _, err) = run(berthd.docker().args([
            "run",
            "--rm",
            "--volumes-from",
            from,
            "-v",
            "fresh:/fresh",
            "busybox",
            "true",
        ]))?;
        assert_ne!(code, 0, "{from}");
        assert!(err.contains(expected), "{from}: {err}");
    }
    // Nothing was made by the refused creates.
    let ps = run_ok(berthd.docker().args(["ps", "-aq"]))?;
    assert_eq!(ps.lines().count(), 1, "{ps}");
    let names = run_ok(berthd.docker().args(["volume", "ls", "-q"]))?;
    assert_eq!(names.trim(), "v1");
    // berth's own CLI sends it too.
    let out = run_ok(berthd.berth()?.args([
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "sh",
        "-c",
        "grep ' /d ' /proc/mounts | grep -q 'ro,' && echo ro",
    ]))?;
    assert_eq!(out.trim(), "ro");
    Ok(())
}

#[test]
fn inspect_lists_every_mount_with_dockerds_fields() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let host = tempfile::tempdir()?;
    let h = host.path().display().to_string();
    run_ok(berthd.docker().args([
        "create",
        "--name",
        "all",
        "-v",
        "named:/v-named",
        "-v",
        "named-ro:/v-named-ro:ro",
        "-v",
        "/v-anon",
        "-v",
        &format!("{h}:/b-plain"),
        "-v",
        &format!("{h}:/b-modes:ro,rslave"),
        "--mount",
        &format!("type=bind,source={h},target=/m-bind,bind-propagation=rshared"),
        "--mount",
        "type=volume,source=mvol,target=/m-vol,readonly,volume-nocopy",
        "--mount",
        "type=tmpfs,target=/m-tmpfs,tmpfs-mode=1770",
        "--tmpfs",
        "/not-listed",
        "busybox",
        "sh",
        "-c",
        "stat -c %a /m-tmpfs; for m in /m-vol /b-modes /v-named-ro /v-named /m-bind; do \
         grep \" $m \" /proc/mounts | cut -d' ' -f4 | cut -d, -f1; done",
    ]))?;
    // Each option applied.
    let out = run_ok(berthd.docker().args(["start", "-a", "all"]))?;
    assert_eq!(out, "1770\nro\nro\nro\nrw\nrw\n");
    let got = mounts(&berthd, "all")?;
    let anon = got
        .iter()
        .find(|m| m["Destination"] == "/v-anon")
        .and_then(|m| m["Name"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(anon.len(), 64, "{got:?}");
    let volume = |name: &str, dest: &str, mode: &str, rw: bool| {
        json!({"Type": "volume", "Name": name, "Source": data(&berthd, name),
            "Destination": dest, "Driver": "local", "Mode": mode, "RW": rw, "Propagation": ""})
    };
    let bind = |dest: &str, mode: &str, rw: bool, propagation: &str| {
        json!({"Type": "bind", "Source": h, "Destination": dest, "Mode": mode, "RW": rw,
            "Propagation": propagation})
    };
    // What dockerd 20.10 answers for the same flags (its MountPoint, Name and Driver
    // omitted when empty): `z` on a local volume asked for without a mode.
    assert_eq!(
        got,
        vec![
            bind("/b-modes", "ro,rslave", false, "rslave"),
            bind("/b-plain", "", true, "rprivate"),
            bind("/m-bind", "", true, "rshared"),
            json!({"Type": "tmpfs", "Source": "", "Destination": "/m-tmpfs", "Mode": "",
                "RW": true, "Propagation": ""}),
            volume("mvol", "/m-vol", "z", false),
            volume(&anon, "/v-anon", "", true),
            volume("named", "/v-named", "z", true),
            volume("named-ro", "/v-named-ro", "ro", false),
        ]
    );
    // The list shows the same.
    let listed = run_ok(berthd.docker().args([
        "ps",
        "-a",
        "--filter",
        "name=all",
        "--format",
        "{{.Mounts}}",
    ]))?;
    assert!(listed.contains("named"), "{listed}");
    Ok(())
}
