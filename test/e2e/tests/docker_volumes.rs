//! Volumes through Debian's docker 20.10 client and berth's CLI: a named volume's
//! data outlives its container and berthd's restart, in-use removal is refused,
//! anonymous volumes (`-v /path`, an image's `VOLUME` with its content copied up) go
//! with `rm -v`, prune, and bad input refused with nothing made.

use std::path::Path;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

fn volume_names(berthd: &Berthd, filter: &[&str]) -> Result<Vec<String>> {
    let mut cmd = berthd.docker();
    cmd.args(["volume", "ls", "-q"]);
    for f in filter {
        cmd.args(["--filter", f]);
    }
    Ok(run_ok(&mut cmd)?
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

fn data(berthd: &Berthd, name: &str) -> std::path::PathBuf {
    berthd.root().join("volumes").join(name).join("_data")
}

#[test]
fn named_volumes_keep_data_across_containers_and_restarts() -> Result<()> {
    require_root();
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = run_ok(
        berthd
            .docker()
            .args(["volume", "create", "--label", "env=test", "vdata"]),
    )?;
    assert_eq!(out.trim(), "vdata");
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "writer",
        "-v",
        "vdata:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f",
    ]))?;
    run_ok(berthd.docker().args(["rm", "writer"]))?;
    assert_eq!(
        std::fs::read_to_string(data(&berthd, "vdata").join("f"))?,
        "hello\n"
    );
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "-v",
        "vdata:/data:ro",
        "busybox",
        "cat",
        "/data/f",
    ]))?;
    assert_eq!(out.trim(), "hello");
    // Read-only is read-only.
    let (code, _, _) = run(berthd.docker().args([
        "run",
        "--rm",
        "-v",
        "vdata:/data:ro",
        "busybox",
        "touch",
        "/data/g",
    ]))?;
    assert_ne!(code, 0);

    // In use by a container (running or not): refused, even with -f.
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "holder",
        "-v",
        "vdata:/data",
        "busybox",
        "sleep",
        "100",
    ]))?;
    let mounts = run_ok(berthd.docker().args([
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.Destination}} {{.Driver}} {{.RW}}{{end}}",
        "holder",
    ]))?;
    assert_eq!(
        mounts.trim(),
        format!(
            "volume vdata {} /data local true",
            data(&berthd, "vdata").display()
        )
    );
    for args in [
        &["volume", "rm", "vdata"][..],
        &["volume", "rm", "-f", "vdata"],
    ] {
        let (code, _, err) = run(berthd.docker().args(args))?;
        assert_ne!(code, 0);
        assert!(err.contains("remove vdata: volume is in use - ["), "{err}");
    }
    assert_eq!(volume_names(&berthd, &["dangling=false"])?, ["vdata"]);
    assert!(volume_names(&berthd, &["dangling=true"])?.is_empty());
    assert_eq!(volume_names(&berthd, &["label=env=test"])?, ["vdata"]);
    assert_eq!(volume_names(&berthd, &["name=dat"])?, ["vdata"]);
    assert!(volume_names(&berthd, &["label=env=prod"])?.is_empty());
    let inspect = run_ok(berthd.docker().args([
        "volume",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Mountpoint}} {{.Labels.env}} {{.Scope}}",
        "vdata",
    ]))?;
    assert_eq!(
        inspect.trim(),
        format!(
            "vdata local {} test local",
            data(&berthd, "vdata").display()
        )
    );
    let (code, _, err) = run(berthd.docker().args(["volume", "inspect", "nope"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such volume: nope"), "{err}");

    // --mount type=volume makes the volume on first use; berth's CLI lists it.
    run_ok(berthd.docker().args([
        "run",
        "--rm",
        "--mount",
        "type=volume,source=made,target=/m,volume-nocopy",
        "busybox",
        "sh",
        "-c",
        "echo m > /m/x",
    ]))?;
    let listed =
        run_ok(
            berthd
                .berth()?
                .args(["volume", "ls", "--format", "{{.Name}}:{{.Driver}}"]),
        )?;
    assert_eq!(listed.trim(), "made:local\nvdata:local");

    // Records and data survive berthd's restart.
    berthd.restart()?;
    assert_eq!(volume_names(&berthd, &[])?, ["made", "vdata"]);
    let out = run_ok(
        berthd
            .docker()
            .args(["run", "--rm", "-v", "made:/m", "busybox", "cat", "/m/x"]),
    )?;
    assert_eq!(out.trim(), "m");
    run_ok(berthd.docker().args(["rm", "-f", "holder"]))?;

    // docker 20.10's prune (API 1.41) takes every unused volume; berth's CLI too.
    run_ok(
        berthd
            .berth()?
            .args(["volume", "create", "--label", "keep=1", "kept"]),
    )?;
    let out = run_ok(
        berthd
            .docker()
            .args(["volume", "prune", "-f", "--filter", "label!=keep"]),
    )?;
    assert!(out.contains("made") && out.contains("vdata"), "{out}");
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(volume_names(&berthd, &[])?, ["kept"]);
    assert!(!berthd.root().join("volumes/vdata").exists());
    let out = run_ok(berthd.berth()?.args(["volume", "rm", "kept"]))?;
    assert_eq!(out.trim(), "kept");
    let (code, _, err) = run(berthd.docker().args(["volume", "rm", "kept"]))?;
    assert_ne!(code, 0);
    // The client turns dockerd's 404 into its own wording.
    assert!(err.contains("No such volume: kept"), "{err}");
    run_ok(berthd.docker().args(["volume", "rm", "-f", "kept"]))?;
    Ok(())
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_image_volumes_get_the_images_files() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "anon",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo x > /data/y",
    ]))?;
    let name = run_ok(berthd.docker().args([
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}} {{.Destination}}{{end}}",
        "anon",
    ]))?;
    let (name, dest) = name.trim().split_once(' ').unwrap_or_default();
    assert_eq!((name.len(), dest), (64, "/data"));
    assert_eq!(
        std::fs::read_to_string(data(&berthd, name).join("y"))?,
        "x\n"
    );
    run_ok(berthd.docker().args(["rm", "-v", "anon"]))?;
    assert!(volume_names(&berthd, &[])?.is_empty());
    assert!(!berthd.root().join("volumes").join(name).exists());

    // An image with VOLUME: an anonymous volume filled with the image's files, unless
    // the container mounts something else there.
    let dir = tempfile::tempdir()?;
    let rootfs = dir.path().join("rootfs");
    berth_fixtures::busybox_rootfs(&rootfs)?;
    std::fs::create_dir_all(rootfs.join("srv/seed"))?;
    std::fs::write(rootfs.join("srv/seed/hello"), "from the image\n")?;
    let tar = dir.path().join("rootfs.tar");
    run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    run_ok(
        berthd
            .berth()?
            .args(["import", "--change", r#"VOLUME ["/srv/seed"]"#])
            .arg(&tar)
            .arg("seeded"),
    )?;
    let vols = run_ok(berthd.docker().args([
        "image",
        "inspect",
        "-f",
        "{{json .Config.Volumes}}",
        "seeded",
    ]))?;
    assert_eq!(vols.trim(), r#"{"/srv/seed":{}}"#);
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "img",
        "seeded",
        "sh",
        "-c",
        "cat /srv/seed/hello; echo more > /srv/seed/more",
    ]))?;
    let out = run_ok(berthd.docker().args(["logs", "img"]))?;
    assert_eq!(out.trim(), "from the image");
    let name = run_ok(berthd.docker().args([
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}}{{end}}",
        "img",
    ]))?;
    let name = name.trim().to_string();
    assert!(Path::new(&data(&berthd, &name).join("more")).exists());
    // A named volume with nocopy at the same path stays empty.
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "-v",
        "empty:/srv/seed:nocopy",
        "seeded",
        "ls",
        "-A",
        "/srv/seed",
    ]))?;
    assert_eq!(out.trim(), "");
    // Without rm -v the anonymous volume stays (dangling), and a prune takes it.
    run_ok(berthd.docker().args(["rm", "img"]))?;
    let mut dangling = volume_names(&berthd, &["dangling=true"])?;
    dangling.sort();
    let mut want = vec!["empty".to_string(), name.clone()];
    want.sort();
    assert_eq!(dangling, want);
    // --rm takes the anonymous volume along.
    run_ok(berthd.docker().args(["run", "--rm", "seeded", "true"]))?;
    assert_eq!(volume_names(&berthd, &[])?.len(), 2);
    run_ok(berthd.docker().args(["volume", "prune", "-f"]))?;
    assert!(volume_names(&berthd, &[])?.is_empty());
    Ok(())
}

#[test]
fn bad_volume_input_is_refused_and_nothing_is_made() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    for (args, wanted) in [
        (
            &["volume", "create", "a"][..],
            "includes invalid characters for a local volume name",
        ),
        (
            &["volume", "create", ".hidden"],
            "includes invalid characters",
        ),
        (&["volume", "create", "-d", "nfs", "remote"], "nfs"),
        (
            &["volume", "create", "-o", "type=tmpfs", "t"],
            "missing required option: \"device\"",
        ),
        (
            &["volume", "create", "-o", "colour=blue", "t"],
            "invalid option: \"colour\"",
        ),
        (
            &["run", "--rm", "-v", "bad..name!:/x", "busybox", "true"],
            "includes invalid characters",
        ),
        (
            &["run", "--rm", "-v", "v1:/x:rshared", "busybox", "true"],
            "propagation",
        ),
        (
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,source=v2,target=/x,volume-driver=nfs",
                "busybox",
                "true",
            ],
            "VolumeOptions.DriverConfig",
        ),
        // Refused after the volume was made: it goes again.
        (
            &[
                "run", "--rm", "-v", "v3:/x", "-u", "ghost", "busybox", "true",
            ],
            "ghost",
        ),
    ] {
        let (code, _, err) = run(berthd.docker().args(args))?;
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
    assert!(volume_names(&berthd, &[])?.is_empty());
    assert!(run_ok(berthd.docker().args(["ps", "-aq"]))?
        .trim()
        .is_empty());
    let top = berthd.root().join("volumes");
    assert!(!top.exists() || std::fs::read_dir(&top)?.next().is_none());
    Ok(())
}

#[test]
fn image_volumes_behind_links_are_filled_from_inside_the_image() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let dir = tempfile::tempdir()?;
    let rootfs = dir.path().join("rootfs");
    berth_fixtures::busybox_rootfs(&rootfs)?;
    // /app is a link to /opt/app (absolute: resolved inside the image, not on the
    // host), /cfg a relative link climbing past the root; both volumes' parents.
    std::fs::create_dir_all(rootfs.join("opt/app/data"))?;
    std::fs::write(rootfs.join("opt/app/data/seed"), "seeded\n")?;
    std::fs::create_dir_all(rootfs.join("etc/conf/d"))?;
    std::fs::write(rootfs.join("etc/conf/d/x.conf"), "k=v\n")?;
    std::os::unix::fs::symlink("/opt/app", rootfs.join("app"))?;
    std::os::unix::fs::symlink("../../../etc/conf", rootfs.join("cfg"))?;
    let tar = dir.path().join("rootfs.tar");
    run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    run_ok(
        berthd
            .berth()?
            .args(["import", "--change", r#"VOLUME ["/app/data", "/cfg/d"]"#])
            .arg(&tar)
            .arg("linked"),
    )?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "linked-c",
        "linked",
        "sh",
        "-c",
        "cat /app/data/seed /cfg/d/x.conf",
    ]))?;
    let out = run_ok(berthd.docker().args(["logs", "linked-c"]))?;
    assert_eq!(out, "seeded\nk=v\n");
    let mounts = run_ok(berthd.docker().args([
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Destination}}={{.Name}} {{end}}",
        "linked-c",
    ]))?;
    let mut found = 0;
    for m in mounts.split_whitespace() {
        let (dest, name) = m.split_once('=').unwrap_or_default();
        let file = match dest {
            "/app/data" => "seed",
            "/cfg/d" => "x.conf",
            _ => continue,
        };
        assert!(data(&berthd, name).join(file).is_file(), "{m}");
        found += 1;
    }
    assert_eq!(found, 2, "{mounts}");
    run_ok(berthd.docker().args(["rm", "-v", "linked-c"]))?;
    assert!(volume_names(&berthd, &[])?.is_empty());
    Ok(())
}
