//! Build secrets and remote sources against berthd: `berth build --secret` shown to
//! the RUN steps that mount it (a file or an environment variable) and nowhere else —
//! not in a layer tar, the image, its history or the build's output — and not part of
//! the cache key (as in BuildKit); `ADD` of URLs from an HTTP server on 127.0.0.1;
//! neither a secret's file nor a download outlives a berthd killed during its step.

use std::fs;
use std::path::Path;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

const SECRET: &str = "s3cret-ZqW8-never-stored";

fn write(dir: &Path, name: &str, content: &str) -> Result<()> {
    fs::write(dir.join(name), content)?;
    Ok(())
}

fn sha256_hex(path: &Path) -> Result<String> {
    let out = run_ok(std::process::Command::new("sha256sum").arg(path))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Every file of `docker save`'s archive of `image`, unpacked under `dir`, searched
/// for `needle`: the names of those holding it.
fn saved_files_holding(
    berthd: &Berthd,
    image: &str,
    dir: &Path,
    needle: &[u8],
) -> Result<Vec<String>> {
    let tar = dir.join("image.tar");
    run_ok(berthd.docker().args(["save", "-o"]).arg(&tar).arg(image))?;
    let out = dir.join("saved");
    fs::create_dir_all(&out)?;
    run_ok(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&out),
    )?;
    let mut found = Vec::new();
    let mut todo = vec![out];
    let mut files = 0;
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.is_file() {
                files += 1;
                let bytes = fs::read(&p)?;
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    anyhow::ensure!(files > 2, "docker save wrote only {files} files");
    Ok(found)
}

#[test]
fn secrets_reach_their_run_step_only() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let secret_file = work.path().join("token.txt");
    fs::write(&secret_file, SECRET)?;
    let want_hash = sha256_hex(&secret_file)?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /hash && stat -c %a /run/secrets/tok > /mode\n\
         RUN --mount=type=secret,id=tok,env=TOKEN,target=/etc/tk,mode=0440,uid=7,gid=8 printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1 > /envhash && stat -c '%a %u %g' /etc/tk > /tk\n\
         RUN --mount=type=secret,id=fromenv,required wc -c < /run/secrets/fromenv > /fromenv-len\n\
         RUN cat /run/secrets/tok /etc/tk 2>/dev/null | wc -c > /later; env | grep -c TOKEN > /later-env || true\n",
    )?;
    let build = |tag: &str| -> Result<String> {
        run_ok(
            berthd
                .berth()?
                .env("FROMENV_VALUE", "twelve bytes")
                .args(["build", "-t", tag, "--secret"])
                .arg(format!("id=tok,src={}", secret_file.display()))
                .args(["--secret", "type=env,id=fromenv,env=FROMENV_VALUE"])
                .arg(ctx.path()),
        )
    };
    let out = build("s1")?;
    assert!(out.contains("Successfully tagged s1"), "{out}");
    assert!(
        !out.contains(SECRET),
        "the secret is in the build's output: {out}"
    );
    let show = "cat /hash /mode /envhash /tk /fromenv-len /later /later-env";
    let seen = run_ok(
        berthd
            .docker()
            .args(["run", "--rm", "s1", "sh", "-c", show]),
    )?;
    assert_eq!(
        seen,
        format!("{want_hash}\n400\n{want_hash}\n440 7 8\n12\n0\n0\n"),
        "what the steps saw"
    );

    // Nowhere in the image: layers, config, history, inspect.
    let held = saved_files_holding(&berthd, "s1", work.path(), SECRET.as_bytes())?;
    assert!(held.is_empty(), "the secret is stored in {held:?}");
    let history = run_ok(berthd.docker().args(["history", "--no-trunc", "s1"]))?;
    assert!(!history.contains(SECRET), "{history}");
    assert!(history.contains("sha256sum /run/secrets/tok"), "{history}");
    let inspect = run_ok(berthd.docker().args(["image", "inspect", "s1"]))?;
    assert!(!inspect.contains(SECRET), "{inspect}");
    // The files berthd wrote for the steps are gone, and no mount is left.
    let dir = berthd.root().join("uploads/build-secrets");
    let left: Vec<_> = fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "secret files left: {left:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    let root = berthd.root().display().to_string();
    assert!(!mounts.contains(&root), "a mount under {root} is left");

    // The secret's content is not part of the cache key (as in BuildKit): a changed
    // secret reuses every step and yields the same image.
    let id1 = run_ok(
        berthd
            .docker()
            .args(["image", "inspect", "-f", "{{.Id}}", "s1"]),
    )?;
    fs::write(&secret_file, "another value")?;
    let out = build("s2")?;
    assert_eq!(out.matches(" ---> Using cache").count(), 4, "{out}");
    let id2 = run_ok(
        berthd
            .docker()
            .args(["image", "inspect", "-f", "{{.Id}}", "s2"]),
    )?;
    assert_eq!(id1, id2);

    // A src that does not exist is refused by name, before anything is sent.
    let (code, _, stderr) = run(berthd
        .berth()?
        .args([
            "build",
            "--secret",
            "id=tok,src=/nonexistent/berth-secret",
            "-t",
            "bad",
        ])
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("id=tok") && stderr.contains("/nonexistent/berth-secret"),
        "{stderr}"
    );
    for (spec, want) in [
        ("src=/etc/hostname", "an id is required"),
        ("id=x,type=ssh", "unsupported secret type"),
        ("id=x,colour=red", "unexpected key 'colour'"),
        (
            "type=env,id=x,env=BERTH_NO_SUCH_VAR",
            "BERTH_NO_SUCH_VAR is not set",
        ),
    ] {
        let (code, _, stderr) = run(berthd
            .berth()?
            .args(["build", "--secret", spec])
            .arg(ctx.path()))?;
        assert_ne!(code, 0, "{spec}");
        assert!(stderr.contains(want), "{spec}: {stderr}");
    }
    // A required secret that is not given fails the step with its name (the docker
    // CLI's classic builder cannot pass secrets: the same).
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=absent,required true\n",
    )?;
    let (code, _, stderr) = run(berthd
        .docker()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "bad"])
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(stderr.contains("secret absent not found"), "{stderr}");
    let ps = run_ok(berthd.docker().args(["ps", "-aq"]))?;
    assert_eq!(ps.trim(), "", "containers left: {ps}");
    Ok(())
}

/// A tiny HTTP/1.0 server on 127.0.0.1 (a port the kernel picks) answering
/// `/files/<name>` with `body` and a fixed `Last-Modified`, anything else with 404.
fn serve(body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> Result<u16> {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(match conn.try_clone() {
                Ok(c) => c,
                Err(_) => continue,
            });
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).map(|n| n == 0).unwrap_or(true) || l == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("");
            let reply = if path.starts_with("/files/") {
                let b = body.lock().map(|b| b.clone()).unwrap_or_default();
                let mut r = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .into_bytes();
                r.extend(b);
                r
            } else {
                b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            };
            let _ = conn.write_all(&reply);
        }
    });
    Ok(port)
}

#[test]
fn add_fetches_urls_from_loopback() -> Result<()> {
    require_root();
    let body = std::sync::Arc::new(std::sync::Mutex::new(b"downloaded one\n".to_vec()));
    let port = serve(body.clone())?;
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let base = format!("http://127.0.0.1:{port}/files");
    let sum = {
        let p = work.path().join("one");
        fs::write(&p, b"downloaded one\n")?;
        sha256_hex(&p)?
    };
    let dockerfile = |checksum: &str| {
        format!(
            "FROM busybox\n\
             ADD {base}/data.txt /d/\n\
             ADD --chown=7:8 --chmod=0640 {base}/data.txt /owned.txt\n\
             ADD --checksum=sha256:{checksum} {base}/data.txt /checked\n"
        )
    };
    write(ctx.path(), "Dockerfile", &dockerfile(&sum))?;
    let build = |tag: &str| -> Result<String> {
        run_ok(berthd.berth()?.args(["build", "-t", tag]).arg(ctx.path()))
    };
    build("u1")?;
    let show = "stat -c '%a %u %g %Y' /d/data.txt /owned.txt /checked; cat /d/data.txt /owned.txt /checked";
    let out = run_ok(
        berthd
            .docker()
            .args(["run", "--rm", "u1", "sh", "-c", show]),
    )?;
    assert_eq!(
        out,
        "600 0 0 784111777\n640 7 8 784111777\n600 0 0 784111777\n\
         downloaded one\ndownloaded one\ndownloaded one\n"
    );
    // Keyed by the content: the same content is a cache hit, a changed one is not.
    let out = build("u2")?;
    assert_eq!(out.matches(" ---> Using cache").count(), 3, "{out}");
    *body.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = b"downloaded two\n".to_vec();
    write(
        ctx.path(),
        "Dockerfile",
        &dockerfile(&sum).replace(
            &format!("ADD --checksum=sha256:{sum} {base}/data.txt /checked\n"),
            "",
        ),
    )?;
    let out = build("u3")?;
    assert_eq!(out.matches(" ---> Using cache").count(), 0, "{out}");
    let out = run_ok(
        berthd
            .docker()
            .args(["run", "--rm", "u3", "cat", "/d/data.txt"]),
    )?;
    assert_eq!(out, "downloaded two\n");

    // A wrong checksum names both digests; a 404 and a URL without a file name for a
    // directory destination are refused.
    let wrong = "0".repeat(64);
    let sum2 = {
        let p = work.path().join("two");
        fs::write(&p, b"downloaded two\n")?;
        sha256_hex(&p)?
    };
    for (line, want) in [
        (
            format!("ADD --checksum=sha256:{wrong} {base}/data.txt /c\n"),
            vec![
                format!("expected sha256:{wrong}"),
                format!("got sha256:{sum2}"),
            ],
        ),
        (
            format!("ADD http://127.0.0.1:{port}/nothing-here /c\n"),
            vec!["404".to_string()],
        ),
        (
            format!("ADD http://127.0.0.1:{port}/ /dir/\n"),
            vec!["cannot determine filename from url".to_string()],
        ),
        (
            "ADD --checksum=sha256:00 data.txt /c\n".to_string(),
            vec!["--checksum applies only to URL sources".to_string()],
        ),
    ] {
        write(ctx.path(), "Dockerfile", &format!("FROM busybox\n{line}"))?;
        write(ctx.path(), "data.txt", "local\n")?;
        let (code, _, stderr) = run(berthd.berth()?.args(["build", "-t", "bad"]).arg(ctx.path()))?;
        assert_ne!(code, 0, "{line}");
        for w in want {
            assert!(stderr.contains(&w), "{line}: want {w:?} in {stderr}");
        }
    }
    let left: Vec<_> = fs::read_dir(berthd.root().join("uploads/build-downloads"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "downloads left: {left:?}");
    Ok(())
}

/// The "Build Cache" row of `docker system df` (its Size column) and the total.
fn cache_row(berthd: &Berthd) -> Result<(String, String)> {
    let out = run_ok(berthd.docker().args([
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Size}}|{{.Reclaimable}}",
    ]))?;
    let row = out
        .lines()
        .find(|l| l.starts_with("Build Cache|"))
        .ok_or_else(|| anyhow::anyhow!("no Build Cache row: {out}"))?;
    let f: Vec<&str> = row.split('|').collect();
    assert_eq!(f[2], f[3], "all of the cache is reclaimable: {row}");
    Ok((f[1].to_string(), f[2].to_string()))
}

#[test]
fn build_cache_in_system_df_and_prune() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let (count, size) = cache_row(&berthd)?;
    assert_eq!((count.as_str(), size.as_str()), ("0", "0B"));
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN head -c 3000000 /dev/zero > /big\nENV A=1\n",
    )?;
    run_ok(
        berthd
            .berth()?
            .args(["build", "-t", "cached"])
            .arg(ctx.path()),
    )?;
    // The image holds the RUN's layer: only the entry files count.
    let (count, size) = cache_row(&berthd)?;
    assert_eq!(count, "2");
    assert!(!size.ends_with("MB"), "{size}");
    // An image's removal collects the layers only it held, the cache's too (berth's
    // GC has one kind of root): df counts what is still stored.
    run_ok(berthd.docker().args(["rmi", "cached"]))?;
    let (_, size) = cache_row(&berthd)?;
    assert!(!size.ends_with("MB"), "{size}");
    // A stage the final image does not start from: its RUN layer is the cache's alone.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS big\nRUN head -c 3000000 /dev/zero > /big && echo s > /small\n\
         FROM busybox\nCOPY --from=big /small /small\n",
    )?;
    run_ok(
        berthd
            .berth()?
            .args(["build", "-t", "staged"])
            .arg(ctx.path()),
    )?;
    let (_, size) = cache_row(&berthd)?;
    assert!(size.starts_with("3.") && size.ends_with("MB"), "{size}");
    let api = run_ok(berthd.docker().args(["system", "df", "-v"]))?;
    assert!(api.contains(&format!("Build cache usage: {size}")), "{api}");
    assert!(api.contains("CACHE ID") && api.contains("regular"), "{api}");
    let pruned = run_ok(berthd.berth()?.args(["builder", "prune", "-f"]))?;
    assert!(
        pruned.contains(&format!("Total reclaimed space: {size}")),
        "df said {size}: {pruned}"
    );
    let (count, size) = cache_row(&berthd)?;
    assert_eq!((count.as_str(), size.as_str()), ("0", "0B"));
    // The image built survives the prune and runs.
    let out = run_ok(
        berthd
            .docker()
            .args(["run", "--rm", "staged", "cat", "/small"]),
    )?;
    assert_eq!(out, "s\n");
    Ok(())
}

/// Where under `dirs` a regular file holds `needle` (nothing followed: links, FIFOs and
/// sockets are not read).
fn files_holding(dirs: &[&Path], needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(p);
            } else if meta.is_file() {
                let held = fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle));
                if held {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}

/// An HTTP/1.0 server on 127.0.0.1 that answers any request with a long
/// Content-Length, sends `first` and then nothing more until the client hangs up: a
/// download that stays half done.
fn serve_stalled(first: &'static [u8]) -> Result<u16> {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let Ok(clone) = conn.try_clone() else { return };
                let mut reader = BufReader::new(clone);
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).map(|n| n == 0).unwrap_or(true) || l == "\r\n" {
                        break;
                    }
                }
                let head = "HTTP/1.0 200 OK\r\nContent-Length: 10000000\r\n\r\n";
                if conn.write_all(head.as_bytes()).is_err() || conn.write_all(first).is_err() {
                    return;
                }
                let _ = conn.flush();
                // Until the client goes (berthd killed).
                let mut sink = [0u8; 64];
                while reader.read(&mut sink).is_ok_and(|n| n > 0) {}
            });
        }
    });
    Ok(port)
}

/// A crash of berthd during a RUN step that mounts a secret and during an ADD of a URL
/// leaves the secret's file and the partial download on disk (under
/// `<root>/uploads`); the next start empties that directory, so neither outlives it,
/// and no file under berthd's root or state holds the secret afterwards.
#[test]
fn crash_leftovers_go_at_the_next_start() -> Result<()> {
    require_root();
    const PARTIAL: &[u8] = b"partial-download-Kx93-of-a-crashed-build";
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let work = tempfile::tempdir()?;
    let secret_file = work.path().join("token.txt");
    fs::write(&secret_file, SECRET)?;
    let ctx_run = tempfile::tempdir()?;
    write(
        ctx_run.path(),
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok sleep 120\n",
    )?;
    let port = serve_stalled(PARTIAL)?;
    let ctx_add = tempfile::tempdir()?;
    write(
        ctx_add.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD http://127.0.0.1:{port}/files/big.bin /big.bin\n"),
    )?;
    let quiet = |c: &mut std::process::Command| {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    };
    let mut secret_build = berthd.berth()?;
    secret_build
        .args(["build", "-t", "crash1", "--secret"])
        .arg(format!("id=tok,src={}", secret_file.display()))
        .arg(ctx_run.path());
    quiet(&mut secret_build);
    let mut add_build = berthd.berth()?;
    add_build
        .args(["build", "-t", "crash2"])
        .arg(ctx_add.path());
    quiet(&mut add_build);
    let mut clients = vec![secret_build.spawn()?, add_build.spawn()?];

    let (root, state) = (berthd.root(), berthd.state());
    let dirs = [root.as_path(), state.as_path()];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut secrets, mut partials) = (Vec::new(), Vec::new());
    while std::time::Instant::now() < deadline {
        secrets = files_holding(&dirs, SECRET.as_bytes());
        partials = files_holding(&dirs, PARTIAL);
        if !secrets.is_empty() && !partials.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !secrets.is_empty() && !partials.is_empty(),
        "the steps did not get going (secret files {secrets:?}, downloads {partials:?}):\n{}",
        berthd.log()
    );
    // The secret is on disk only while its step runs: berthd dies now.
    berthd.kill9()?;
    for mut c in clients.drain(..) {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(
        !files_holding(&dirs, SECRET.as_bytes()).is_empty(),
        "a crash leaves the secret's file behind until the next start"
    );

    berthd.restart()?;
    let secrets = files_holding(&dirs, SECRET.as_bytes());
    assert!(
        secrets.is_empty(),
        "the secret is on disk after the restart: {secrets:?}"
    );
    let partials = files_holding(&dirs, PARTIAL);
    assert!(
        partials.is_empty(),
        "a download is left after the restart: {partials:?}"
    );
    for leftover in ["build-secrets", "build-downloads"] {
        for parent in [root.clone(), root.join("uploads")] {
            let left: Vec<_> = fs::read_dir(parent.join(leftover))
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "left after the restart: {left:?}");
        }
    }
    // The RUN step's container outlived berthd (as any container does); it goes.
    let ids = run_ok(berthd.docker().args(["ps", "-aq", "--no-trunc"]))?;
    for id in ids.split_whitespace() {
        run_ok(berthd.docker().args(["rm", "-f", id]))?;
    }
    Ok(())
}
