//! Extended attributes (`user.*`, `security.capability`) kept by `cp` both ways
//! (berth's CLI and Debian's docker 20.10 CLI), by `export` and by `commit` (the
//! committed layer applied again under a new container), as Docker carries them: PAX
//! `SCHILY.xattr.<name>` records. Values are binary and hold a newline on purpose
//! (the tar crate's own PAX reader splits records there). Attributes are set and
//! read on the host with `setfattr`/`getfattr` (Debian's `attr`), on the
//! container's root filesystem as its shim mounted it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};

/// A file capability (VFS_CAP_REVISION_2, effective; CAP_DAC_OVERRIDE and
/// CAP_FOWNER permitted: 0x0a, a newline byte, in the value).
const CAP: &str = "0x010000020a000000000000000000000000000000";
/// A user attribute with newlines and a NUL in it.
const BIN: &str = "0x0a00ff0a41";

fn setfattr(path: &Path, name: &str, value: &str) -> Result<()> {
    run_ok(
        Command::new("setfattr")
            .args(["-h", "-n", name, "-v", value])
            .arg(path),
    )
    .map(drop)
}

/// The `user.*` and `security.capability` attributes of `path`, values in hex.
fn attrs(path: &Path) -> Result<BTreeMap<String, String>> {
    let out = run_ok(
        Command::new("getfattr")
            .args(["-h", "--absolute-names", "-d", "-m", "-", "-e", "hex"])
            .arg(path),
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("user.") || *k == "security.capability")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn want(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether `dir`'s filesystem takes user attributes; the reason when not.
fn user_xattrs_supported(dir: &Path) -> Option<String> {
    let probe = dir.join(".xattr-probe");
    if let Err(e) = std::fs::write(&probe, "") {
        return Some(format!("cannot write {}: {e}", probe.display()));
    }
    let r = run(Command::new("setfattr")
        .args(["-n", "user.probe", "-v", "1"])
        .arg(&probe));
    let _ = std::fs::remove_file(&probe);
    match r {
        Ok((0, _, _)) => None,
        Ok((_, _, err)) => Some(format!(
            "{} takes no user xattrs: {}",
            dir.display(),
            err.trim()
        )),
        Err(e) => Some(format!("setfattr (package attr) cannot run: {e}")),
    }
}

/// Starts berthd with busybox, or `None` (with the reason printed) when the host's
/// filesystems (berthd's root, the temp dir) do not take user xattrs.
fn setup() -> Result<Option<(Berthd, tempfile::TempDir)>> {
    require_root();
    let host = tempfile::tempdir()?;
    let berthd = Berthd::start()?;
    for dir in [host.path().to_path_buf(), berthd.root()] {
        if let Some(why) = user_xattrs_supported(&dir) {
            eprintln!("skipped: {why}");
            return Ok(None);
        }
    }
    berthd.import_busybox("busybox")?;
    Ok(Some((berthd, host)))
}

/// The root filesystem of a running container, as its shim mounted it on the host.
fn rootfs(berthd: &Berthd, name: &str) -> Result<PathBuf> {
    let id = run_ok(berthd.docker().args(["inspect", "-f", "{{.Id}}", name]))?;
    let p = berthd
        .root()
        .join("containers")
        .join(id.trim())
        .join("rootfs");
    anyhow::ensure!(p.join("bin").exists(), "no rootfs at {}", p.display());
    Ok(p)
}

#[test]
fn cp_into_a_container_keeps_xattrs() -> Result<()> {
    let Some((berthd, host)) = setup()? else {
        return Ok(());
    };
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "xin", "busybox", "sleep", "1000"]),
    )?;
    let root = rootfs(&berthd, "xin")?;
    let src = host.path().join("src");
    std::fs::create_dir_all(src.join("d"))?;
    std::fs::write(src.join("f"), "file\n")?;
    std::fs::write(src.join("d/g"), "g\n")?;
    setfattr(&src.join("f"), "user.color", "blue")?;
    setfattr(&src.join("f"), "user.bin", BIN)?;
    setfattr(&src.join("f"), "security.capability", CAP)?;
    setfattr(&src.join("d"), "user.dir", "yes")?;
    setfattr(&src.join("d/g"), "user.deep", BIN)?;

    // berth's CLI carries user.* and security.capability.
    run_ok(berthd.berth()?.arg("cp").arg(&src).arg("xin:/in"))?;
    let file_attrs = want(&[
        ("security.capability", CAP),
        ("user.bin", BIN),
        ("user.color", "0x626c7565"),
    ]);
    assert_eq!(attrs(&root.join("in/f"))?, file_attrs);
    assert_eq!(
        attrs(&root.join("in/d"))?,
        want(&[("user.dir", "0x796573")])
    );
    assert_eq!(attrs(&root.join("in/d/g"))?, want(&[("user.deep", BIN)]));
    // The data is there too, and the capability survived it (a write clears it).
    assert_eq!(
        run_ok(berthd.docker().args(["exec", "xin", "cat", "/in/f"]))?,
        "file\n"
    );

    // docker 20.10's CLI archives security.capability only (its
    // ReadSecurityXattrToTarHeader); berthd applies what it is sent.
    run_ok(berthd.docker().arg("cp").arg(src.join("f")).arg("xin:/f2"))?;
    assert_eq!(
        attrs(&root.join("f2"))?
            .get("security.capability")
            .map(String::as_str),
        Some(CAP)
    );
    run_ok(berthd.docker().args(["rm", "-f", "xin"]))?;
    Ok(())
}

#[test]
fn cp_out_export_and_commit_keep_xattrs() -> Result<()> {
    let Some((berthd, host)) = setup()? else {
        return Ok(());
    };
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "xout", "busybox", "sleep", "1000"]),
    )?;
    run_ok(berthd.docker().args([
        "exec",
        "xout",
        "sh",
        "-c",
        "mkdir -p /data/d && echo file >/data/f && echo g >/data/d/g",
    ]))?;
    let root = rootfs(&berthd, "xout")?;
    setfattr(&root.join("data/f"), "user.color", "blue")?;
    setfattr(&root.join("data/f"), "user.bin", BIN)?;
    setfattr(&root.join("data/f"), "security.capability", CAP)?;
    setfattr(&root.join("data/d"), "user.dir", "yes")?;
    let file_attrs = want(&[
        ("security.capability", CAP),
        ("user.bin", BIN),
        ("user.color", "0x626c7565"),
    ]);
    let dir_attrs = want(&[("user.dir", "0x796573")]);

    // Out, through both CLIs (docker 20.10 sets every SCHILY.xattr it reads).
    for (cli, out) in [("berth", "out-berth"), ("docker", "out-docker")] {
        let out = host.path().join(out);
        std::fs::create_dir(&out)?;
        let mut cmd = if cli == "berth" {
            berthd.berth()?
        } else {
            berthd.docker()
        };
        run_ok(cmd.arg("cp").arg("xout:/data").arg(&out))?;
        assert_eq!(attrs(&out.join("data/f"))?, file_attrs, "{cli} cp out");
        assert_eq!(attrs(&out.join("data/d"))?, dir_attrs, "{cli} cp out");
        assert_eq!(std::fs::read_to_string(out.join("data/f"))?, "file\n");
    }

    // export: the records are in the tar, as Python's tarfile reads them.
    let tar = host.path().join("export.tar");
    run_ok(berthd.docker().args(["export", "-o"]).arg(&tar).arg("xout"))?;
    let listed = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, tarfile\n\
         t = tarfile.open(sys.argv[1])\n\
         for n in ('data/f', 'data/d'):\n\
         \x20   h = t.getmember(n).pax_headers\n\
         \x20   print(n, sorted(k for k in h if k.startswith('SCHILY.xattr.')))\n\
         print(t.getmember('data/f').pax_headers['SCHILY.xattr.user.color'])\n",
            )
            .arg(&tar),
    )
    .context("reading the export with python3's tarfile")?;
    assert_eq!(
        listed,
        "data/f ['SCHILY.xattr.security.capability', 'SCHILY.xattr.user.bin', \
         'SCHILY.xattr.user.color']\n\
         data/d ['SCHILY.xattr.user.dir']\n\
         blue\n"
    );

    // commit: the layer carries them, and a container of the new image has them.
    run_ok(berthd.docker().args(["commit", "xout", "xattr-img:1"]))?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "xnew",
        "xattr-img:1",
        "sleep",
        "1000",
    ]))?;
    let new_root = rootfs(&berthd, "xnew")?;
    assert_eq!(attrs(&new_root.join("data/f"))?, file_attrs, "committed");
    assert_eq!(attrs(&new_root.join("data/d"))?, dir_attrs, "committed");
    run_ok(berthd.docker().args(["rm", "-f", "xout", "xnew"]))?;
    Ok(())
}
