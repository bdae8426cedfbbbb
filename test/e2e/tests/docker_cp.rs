//! `docker cp` both ways through Debian's docker 20.10 client (the archive endpoints:
//! HEAD for the path's stat, GET and PUT of tars): files, directories, symlinks with
//! and without `-L`, `/.` contents, a tar on stdin/stdout, into and out of a named
//! volume, running and stopped containers, and Docker's errors.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

fn exec(berthd: &Berthd, c: &str, script: &str) -> Result<String> {
    run_ok(berthd.docker().args(["exec", c, "sh", "-c", script]))
}

#[test]
fn cp_both_ways() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "c1",
        "-v",
        "cpvol:/data",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    let host = tempfile::tempdir()?;
    let src = host.path().join("src");
    fs::create_dir_all(src.join("sub"))?;
    fs::write(src.join("a.txt"), "alpha\n")?;
    fs::write(src.join("sub/b.txt"), "beta\n")?;
    std::os::unix::fs::symlink("a.txt", src.join("link"))?;

    // Host to container: a file into a directory, a directory to a new name, a
    // directory into a volume.
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg(src.join("a.txt"))
            .arg("c1:/tmp/"),
    )?;
    assert_eq!(exec(&berthd, "c1", "cat /tmp/a.txt")?, "alpha\n");
    run_ok(berthd.docker().arg("cp").arg(&src).arg("c1:/tmp/newdir"))?;
    assert_eq!(exec(&berthd, "c1", "cat /tmp/newdir/sub/b.txt")?, "beta\n");
    assert_eq!(
        exec(&berthd, "c1", "readlink /tmp/newdir/link")?.trim(),
        "a.txt"
    );
    run_ok(berthd.docker().arg("cp").arg(&src).arg("c1:/data/"))?;
    let vol = berthd.root().join("volumes/cpvol/_data");
    assert_eq!(fs::read_to_string(vol.join("src/sub/b.txt"))?, "beta\n");
    // A file to a new name, and a missing parent refused.
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg(src.join("a.txt"))
            .arg("c1:/tmp/renamed"),
    )?;
    assert_eq!(exec(&berthd, "c1", "cat /tmp/renamed")?, "alpha\n");
    let (code, _, err) = run(berthd
        .docker()
        .arg("cp")
        .arg(src.join("a.txt"))
        .arg("c1:/nope/x"))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container:path"), "{err}");
    // Into a file's place as a directory: refused.
    let (code, _, err) = run(berthd.docker().arg("cp").arg(&src).arg("c1:/tmp/a.txt"))?;
    assert_ne!(code, 0, "{err}");

    // Container to host.
    let out = host.path().join("out");
    fs::create_dir(&out)?;
    run_ok(berthd.docker().arg("cp").arg("c1:/tmp/newdir").arg(&out))?;
    assert_eq!(fs::read_to_string(out.join("newdir/sub/b.txt"))?, "beta\n");
    assert_eq!(fs::read_link(out.join("newdir/link"))?, Path::new("a.txt"));
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg("c1:/tmp/newdir/.")
            .arg(out.join("contents")),
    )?;
    assert_eq!(fs::read_to_string(out.join("contents/a.txt"))?, "alpha\n");
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg("c1:/data/src/sub/b.txt")
            .arg(out.join("b-copy")),
    )?;
    assert_eq!(fs::read_to_string(out.join("b-copy"))?, "beta\n");
    // Symlinks: as links, or followed with -L.
    exec(&berthd, "c1", "ln -s /tmp/a.txt /tmp/abs-link")?;
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg("c1:/tmp/abs-link")
            .arg(out.join("l1")),
    )?;
    assert_eq!(fs::read_link(out.join("l1"))?, Path::new("/tmp/a.txt"));
    run_ok(
        berthd
            .docker()
            .args(["cp", "-L"])
            .arg("c1:/tmp/abs-link")
            .arg(out.join("l2")),
    )?;
    assert_eq!(fs::read_to_string(out.join("l2"))?, "alpha\n");
    // A tar on stdout.
    let o = berthd
        .docker()
        .args(["cp", "c1:/tmp/newdir", "-"])
        .stdout(Stdio::piped())
        .output()?;
    assert!(o.status.success());
    let listing = tar_list(&o.stdout)?;
    for want in ["newdir/", "newdir/a.txt", "newdir/link", "newdir/sub/b.txt"] {
        assert!(listing.iter().any(|l| l == want), "{want} in {listing:?}");
    }
    // A tar on stdin (the target must be a directory).
    let tarball = host.path().join("in.tar");
    run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&tarball)
            .arg("sub"),
    )?;
    let status = berthd
        .docker()
        .args(["cp", "-", "c1:/tmp"])
        .stdin(fs::File::open(&tarball)?)
        .status()?;
    assert!(status.success());
    assert_eq!(exec(&berthd, "c1", "cat /tmp/sub/b.txt")?, "beta\n");
    // Missing source: Docker's error.
    let (code, _, err) = run(berthd.docker().arg("cp").arg("c1:/missing").arg(&out))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container:path: c1:/missing"), "{err}");

    // A stopped container, its volume included, both ways.
    run_ok(berthd.docker().args(["stop", "-t", "1", "c1"]))?;
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg("c1:/data/src/a.txt")
            .arg(out.join("stopped.txt")),
    )?;
    assert_eq!(fs::read_to_string(out.join("stopped.txt"))?, "alpha\n");
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg(src.join("sub/b.txt"))
            .arg("c1:/from-host.txt"),
    )?;
    run_ok(
        berthd
            .docker()
            .arg("cp")
            .arg(src.join("sub/b.txt"))
            .arg("c1:/data/b2.txt"),
    )?;
    assert_eq!(fs::read_to_string(vol.join("b2.txt"))?, "beta\n");
    run_ok(berthd.docker().args(["start", "c1"]))?;
    assert_eq!(exec(&berthd, "c1", "cat /from-host.txt")?, "beta\n");
    run_ok(berthd.docker().args(["rm", "-f", "c1"]))?;
    let (code, _, err) = run(berthd.docker().arg("cp").arg("c1:/etc").arg(&out))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container"), "{err}");
    Ok(())
}

#[test]
fn cp_read_only_targets_are_refused() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "ro",
        "--read-only",
        "-v",
        "rwvol:/rw",
        "-v",
        "rovol:/ro:ro",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    let host = tempfile::tempdir()?;
    let f = host.path().join("f");
    fs::write(&f, "x")?;
    let (code, _, err) = run(berthd.docker().arg("cp").arg(&f).arg("ro:/tmp/"))?;
    assert_ne!(code, 0);
    assert!(
        err.contains("container rootfs is marked read-only"),
        "{err}"
    );
    let (code, _, err) = run(berthd.docker().arg("cp").arg(&f).arg("ro:/ro/"))?;
    assert_ne!(code, 0);
    assert!(err.contains("marked read-only"), "{err}");
    run_ok(berthd.docker().arg("cp").arg(&f).arg("ro:/rw/"))?;
    assert_eq!(exec(&berthd, "ro", "cat /rw/f")?, "x");
    run_ok(berthd.docker().args(["rm", "-f", "ro"]))?;
    Ok(())
}

pub fn tar_list(bytes: &[u8]) -> Result<Vec<String>> {
    let mut child = std::process::Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
        stdin.write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "tar -t failed");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The same rules through berth's own CLI.
#[test]
fn berth_cp_both_ways() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.berth()?.args([
        "run",
        "-d",
        "--name",
        "b1",
        "-v",
        "bvol:/data",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    let host = tempfile::tempdir()?;
    let src = host.path().join("src");
    fs::create_dir_all(src.join("sub"))?;
    fs::write(src.join("a.txt"), "alpha\n")?;
    fs::write(src.join("sub/b.txt"), "beta\n")?;
    std::os::unix::fs::symlink("a.txt", src.join("link"))?;
    let berth = || berthd.berth();
    run_ok(berth()?.arg("cp").arg(src.join("a.txt")).arg("b1:/tmp/"))?;
    assert_eq!(exec(&berthd, "b1", "cat /tmp/a.txt")?, "alpha\n");
    run_ok(berth()?.arg("cp").arg(&src).arg("b1:/tmp/newdir"))?;
    assert_eq!(exec(&berthd, "b1", "cat /tmp/newdir/sub/b.txt")?, "beta\n");
    assert_eq!(
        exec(&berthd, "b1", "readlink /tmp/newdir/link")?.trim(),
        "a.txt"
    );
    run_ok(berth()?.arg("cp").arg(&src).arg("b1:/data"))?;
    assert_eq!(
        fs::read_to_string(berthd.root().join("volumes/bvol/_data/src/a.txt"))?,
        "alpha\n"
    );
    run_ok(
        berth()?
            .arg("cp")
            .arg(format!("{}/.", src.display()))
            .arg("b1:/tmp/contents"),
    )?;
    assert_eq!(exec(&berthd, "b1", "cat /tmp/contents/a.txt")?, "alpha\n");
    let (code, _, err) = run(berth()?.arg("cp").arg(src.join("a.txt")).arg("b1:/nope/x"))?;
    assert_ne!(code, 0, "{err}");

    let out = host.path().join("out");
    fs::create_dir(&out)?;
    run_ok(berth()?.arg("cp").arg("b1:/tmp/newdir").arg(&out))?;
    assert_eq!(fs::read_to_string(out.join("newdir/sub/b.txt"))?, "beta\n");
    assert_eq!(fs::read_link(out.join("newdir/link"))?, Path::new("a.txt"));
    run_ok(
        berth()?
            .arg("cp")
            .arg("b1:/tmp/newdir/.")
            .arg(out.join("c2")),
    )?;
    assert_eq!(fs::read_to_string(out.join("c2/a.txt"))?, "alpha\n");
    run_ok(
        berth()?
            .arg("cp")
            .arg("b1:/tmp/newdir")
            .arg(out.join("renamed")),
    )?;
    assert_eq!(fs::read_to_string(out.join("renamed/a.txt"))?, "alpha\n");
    run_ok(berth()?.arg("cp").arg("b1:/tmp/a.txt").arg(out.join("f")))?;
    assert_eq!(fs::read_to_string(out.join("f"))?, "alpha\n");
    exec(&berthd, "b1", "ln -s /tmp/a.txt /tmp/abs-link")?;
    run_ok(berth()?.args(["cp", "-L", "b1:/tmp/abs-link"]).arg(&out))?;
    assert_eq!(fs::read_to_string(out.join("abs-link"))?, "alpha\n");
    let o = berth()?.args(["cp", "b1:/tmp/newdir", "-"]).output()?;
    assert!(o.status.success());
    assert!(tar_list(&o.stdout)?.iter().any(|l| l == "newdir/sub/b.txt"));
    let (code, _, err) = run(berth()?.arg("cp").arg("b1:/missing").arg(&out))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container:path: b1:/missing"), "{err}");
    run_ok(berthd.docker().args(["stop", "-t", "1", "b1"]))?;
    run_ok(
        berth()?
            .arg("cp")
            .arg("b1:/data/src/sub/b.txt")
            .arg(out.join("stopped")),
    )?;
    assert_eq!(fs::read_to_string(out.join("stopped"))?, "beta\n");
    run_ok(berthd.docker().args(["rm", "-f", "b1"]))?;
    Ok(())
}

/// `export | tar t` and `diff` through both CLIs.
#[test]
fn export_and_diff() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "ed",
        "-v",
        "edvol:/vol",
        "busybox",
        "sh",
        "-c",
        "echo new > /added.txt; mkdir -p /newdir/sub; echo x > /newdir/sub/f; \
         echo changed >> /etc/passwd; rm /bin/true; echo v > /vol/in-volume",
    ]))?;
    // docker export | tar t: the root's entries, not the volume's content.
    let o = berthd
        .docker()
        .args(["export", "ed"])
        .stdout(Stdio::piped())
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listing = tar_list(&o.stdout)?;
    for want in ["added.txt", "bin/busybox", "etc/passwd", "newdir/sub/f"] {
        assert!(listing.iter().any(|l| l == want), "{want} in export");
    }
    assert!(
        !listing.iter().any(|l| l == "bin/true"),
        "a deleted file exported"
    );
    assert!(
        !listing.iter().any(|l| l.ends_with("in-volume")),
        "volume content exported"
    );
    let host = tempfile::tempdir()?;
    let file = host.path().join("ed.tar");
    run_ok(berthd.berth()?.args(["export", "-o"]).arg(&file).arg("ed"))?;
    assert_eq!(tar_list(&fs::read(&file)?)?, listing);

    let diff = run_ok(berthd.docker().args(["diff", "ed"]))?;
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "A /added.txt",
        "A /newdir",
        "A /newdir/sub",
        "A /newdir/sub/f",
        "C /etc",
        "C /etc/passwd",
        "C /bin",
        "D /bin/true",
    ] {
        assert!(lines.contains(&want), "{want:?} in {lines:?}");
    }
    assert!(!lines.iter().any(|l| l.contains("/vol")), "{lines:?}");
    assert_eq!(run_ok(berthd.berth()?.args(["diff", "ed"]))?, diff);
    let (code, _, err) = run(berthd.docker().args(["diff", "nosuch"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("No such container: nosuch"), "{err}");
    run_ok(berthd.docker().args(["rm", "ed"]))?;
    Ok(())
}

/// `-a` (`copyUIDGID`): files take the container user's ids; without it, the tar's.
#[test]
fn cp_archive_mode_sets_the_container_user() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "ug",
        "-u",
        "1234:2345",
        "busybox",
        "sleep",
        "1000",
    ]))?;
    let host = tempfile::tempdir()?;
    let f = host.path().join("owned");
    fs::write(&f, "x")?;
    std::os::unix::fs::chown(&f, Some(42), Some(43))?;
    run_ok(berthd.docker().args(["cp", "-a"]).arg(&f).arg("ug:/tmp/a"))?;
    assert_eq!(
        exec(&berthd, "ug", "stat -c %u:%g /tmp/a")?.trim(),
        "1234:2345"
    );
    run_ok(berthd.docker().arg("cp").arg(&f).arg("ug:/tmp/b"))?;
    assert_eq!(exec(&berthd, "ug", "stat -c %u:%g /tmp/b")?.trim(), "42:43");
    run_ok(berthd.berth()?.args(["cp", "-a"]).arg(&f).arg("ug:/tmp/c"))?;
    assert_eq!(
        exec(&berthd, "ug", "stat -c %u:%g /tmp/c")?.trim(),
        "1234:2345"
    );
    run_ok(berthd.docker().args(["rm", "-f", "ug"]))?;
    Ok(())
}
