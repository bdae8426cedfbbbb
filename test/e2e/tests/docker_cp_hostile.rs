//! Hostile `cp`: a container that keeps swapping a directory for a symlink to a host
//! path (or `/etc`) while `docker cp` reads and writes through it, and tars with
//! `../` names, escaping links and an absolute symlink followed by a file through it
//! uploaded through the API. Canary files planted on the host prove that nothing
//! outside the container's root is read or written.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

const SECRET: &str = "HOST-SECRET-CANARY";

/// A host directory the container's links name, holding a secret.
fn canary() -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("berth-canary-")
        .tempdir_in("/tmp")?;
    fs::write(dir.path().join("secret"), SECRET)?;
    Ok(dir)
}

fn assert_canary_untouched(dir: &Path) -> Result<()> {
    let names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        names,
        vec!["secret".to_string()],
        "host canary dir written to"
    );
    assert_eq!(fs::read_to_string(dir.join("secret"))?, SECRET);
    Ok(())
}

#[test]
fn swapped_symlinks_never_lead_out_of_the_root() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let canary = canary()?;
    let c = canary.path().display().to_string();
    // /w/t flips between a directory and a symlink to the host canary's path; /w/e
    // flips between a directory and a symlink to /etc.
    let script = format!(
        "mkdir -p /w; while :; do rm -rf /w/t /w/e; ln -s {c} /w/t; ln -s /etc /w/e; \
         rm -f /w/t /w/e; mkdir -p /w/t /w/e; echo inner > /w/t/secret; done"
    );
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "hx", "busybox", "sh", "-c", &script]),
    )?;
    let host = tempfile::tempdir()?;
    let payload = host.path().join("dropped-by-cp");
    fs::write(&payload, "payload")?;
    let mut read_inner = 0;
    for i in 0..40 {
        let _ = run(berthd.docker().arg("cp").arg(&payload).arg("hx:/w/t/"))?;
        let _ = run(berthd.docker().arg("cp").arg(&payload).arg("hx:/w/e/"))?;
        let out = host.path().join(format!("out{i}"));
        let (code, _, _) = run(berthd.docker().arg("cp").arg("hx:/w/t/secret").arg(&out))?;
        if code == 0 && out.exists() {
            let got = fs::read_to_string(&out)?;
            assert_ne!(
                got, SECRET,
                "the host's file was read through a container link"
            );
            if got == "inner\n" {
                read_inner += 1;
            }
        }
        let out = host.path().join(format!("dir{i}"));
        if run(berthd.docker().arg("cp").arg("hx:/w/t").arg(&out))?.0 == 0 {
            // The link itself (its target names a host path once on the host: not
            // followed here), or the container's directory: never the host's secret.
            let copied_a_link =
                fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink());
            if !copied_a_link && out.join("secret").exists() {
                assert_ne!(fs::read_to_string(out.join("secret"))?, SECRET);
            }
        }
        let (code, _, _) = run(berthd
            .docker()
            .args(["cp", "-L", "hx:/w/e/passwd"])
            .arg(host.path().join("p")))?;
        if code == 0 && host.path().join("p").exists() {
            assert_ne!(fs::read(host.path().join("p"))?, fs::read("/etc/passwd")?);
        }
    }
    eprintln!("{read_inner} of 40 reads saw the container's file");
    assert_canary_untouched(canary.path())?;
    assert!(
        !Path::new("/etc/dropped-by-cp").exists(),
        "wrote into the host's /etc"
    );
    run_ok(berthd.docker().args(["rm", "-f", "hx"]))?;
    Ok(())
}

/// PUTs a tar made by `python3 tarfile` from `spec` (one `kind name [target]` per
/// line) and returns the HTTP status and body.
fn put_tar(
    berthd: &Berthd,
    dir: &Path,
    container: &str,
    path: &str,
    spec: &str,
) -> Result<(u16, String)> {
    let tar = dir.join(format!("{}.tar", spec.len()));
    let script = r#"
import io, sys, tarfile
out = tarfile.open(sys.argv[1], "w")
for line in sys.argv[2].strip().splitlines():
    kind, name, *rest = line.split()
    t = tarfile.TarInfo(name)
    if kind == "file":
        data = (rest[0] if rest else "data").encode()
        t.size = len(data)
        out.addfile(t, io.BytesIO(data))
        continue
    t.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE}[kind]
    if kind == "dir":
        t.mode = 0o755
    if kind in ("sym", "hard"):
        t.linkname = rest[0]
    if kind == "chr":
        t.devmajor, t.devminor = 1, 3
    out.addfile(t)
out.close()
"#;
    run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&tar)
            .arg(spec),
    )?;
    let out = run_ok(
        Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-X", "PUT", "--unix-socket"])
            .arg(berthd.docker_socket())
            .args(["-H", "Content-Type: application/x-tar", "--data-binary"])
            .arg(format!("@{}", tar.display()))
            .arg(format!(
                "http://berth/containers/{container}/archive?path={path}"
            )),
    )?;
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    Ok((code.parse()?, body.to_string()))
}

#[test]
fn hostile_uploads_stay_inside_the_root() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let canary = canary()?;
    let c = canary.path().display().to_string();
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "up", "busybox", "sleep", "1000"]),
    )?;
    let id = run_ok(berthd.docker().args(["inspect", "-f", "{{.Id}}", "up"]))?
        .trim()
        .to_string();
    let bundle = berthd.root().join("containers").join(&id);
    let work = tempfile::tempdir()?;

    // `..` out of the target: refused, nothing written above it.
    let (code, body) = put_tar(
        &berthd,
        work.path(),
        "up",
        "/tmp",
        "file ../../../../../escaped\n",
    )?;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("is outside of"), "{body}");
    assert!(!bundle.join("escaped").exists() && !Path::new("/escaped").exists());

    // An absolute symlink, then a file through it: the link is the container's, so
    // the file lands in the container's copy of that path, not on the host.
    run_ok(berthd.docker().args(["exec", "up", "mkdir", "-p", &c]))?;
    let spec = format!("sym esc {c}\nfile esc/pwned owned\n");
    let (code, body) = put_tar(&berthd, work.path(), "up", "/tmp", &spec)?;
    assert_eq!(code, 200, "{body}");
    let inside = run_ok(
        berthd
            .docker()
            .args(["exec", "up", "cat", &format!("{c}/pwned")]),
    )?;
    assert_eq!(inside, "owned");

    // A relative symlink or a hard link climbing out: refused, as dockerd does.
    let (code, body) = put_tar(
        &berthd,
        work.path(),
        "up",
        "/tmp",
        "sym rel ../../../../../../etc\n",
    )?;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid symlink"), "{body}");
    let (code, body) = put_tar(
        &berthd,
        work.path(),
        "up",
        "/tmp",
        "hard h ../../../etc/passwd\n",
    )?;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid hardlink"), "{body}");

    // A link in the container pointing at the host path, used as the PUT target.
    run_ok(berthd.docker().args([
        "exec",
        "up",
        "sh",
        "-c",
        &format!("rm -rf {c}; ln -s {c} /tmp/tolink"),
    ]))?;
    let (code, body) = put_tar(&berthd, work.path(), "up", "/tmp/tolink", "file viaput x\n")?;
    // The link resolves inside the root to a missing path.
    assert_eq!(code, 404, "{body}");

    // Device nodes are made as dockerd makes them (as root, no user namespace).
    let (code, body) = put_tar(&berthd, work.path(), "up", "/tmp", "chr nulldev\n")?;
    assert_eq!(code, 200, "{body}");
    let kind = run_ok(
        berthd
            .docker()
            .args(["exec", "up", "stat", "-c", "%F", "/tmp/nulldev"]),
    )?;
    assert_eq!(kind.trim(), "character special file");

    assert_canary_untouched(canary.path())?;
    run_ok(berthd.docker().args(["rm", "-f", "up"]))?;
    Ok(())
}
