//! `docker build` against berthd with Debian's docker 20.10 client (the classic
//! builder protocol, `DOCKER_BUILDKIT=0`): a Dockerfile using each instruction berth's
//! builder carries out, checked by running the built image and inspecting it; a failing
//! RUN leaves no image, container or mount; a syntax error names the line; COPY of a
//! path leading out of the context is refused; WORKDIR onto a file fails naming it.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};
use serde_json::Value;

fn docker_build(berthd: &Berthd) -> Command {
    let mut cmd = berthd.docker();
    cmd.env("DOCKER_BUILDKIT", "0").arg("build");
    cmd
}

fn write(dir: &Path, name: &str, content: &str) -> Result<()> {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(p, content)?;
    Ok(())
}

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE}
ARG GREETING=hello
ENV APP_HOME=/srv/app \
    PATH=/srv/app/bin:$PATH
LABEL org.example.name="demo app" version=1
MAINTAINER berth tests
WORKDIR $APP_HOME
COPY --chown=www-data:users app.txt ./
COPY --chmod=0705 bin/ bin/
ADD files.tar.gz /opt/
RUN echo "$GREETING from run" > /srv/app/run.txt \
 && rm /etc/hostname \
 && echo 'builder:x:1234:100::/home/builder:/bin/sh' >> /etc/passwd
RUN <<EOF
mkdir -p /srv/app/heredoc
echo heredoc > /srv/app/heredoc/out
EOF
COPY <<-EOT /srv/app/conf.txt
	key=${GREETING}
	EOT
USER builder
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --retries=2 CMD true
ONBUILD RUN echo child
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo default cmd"]
"#;

fn context(dir: &Path) -> Result<()> {
    write(dir, "Dockerfile", DOCKERFILE)?;
    write(dir, "app.txt", "app\n")?;
    write(dir, "bin/tool", "#!/bin/sh\necho tool\n")?;
    fs::set_permissions(dir.join("bin/tool"), fs::Permissions::from_mode(0o755))?;
    fs::set_permissions(dir.join("app.txt"), fs::Permissions::from_mode(0o644))?;
    let payload = dir.join("payload");
    write(&payload, "in/file", "from the tar\n")?;
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&payload)
            .args(["-czf"])
            .arg(dir.join("files.tar.gz"))
            .arg("in"),
    )?;
    fs::remove_dir_all(&payload)?;
    write(dir, "ignored.txt", "never sent\n")?;
    write(dir, ".dockerignore", "ignored.txt\n")?;
    Ok(())
}

#[test]
fn docker_build_applies_every_instruction() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    context(ctx.path())?;
    let out = run_ok(
        docker_build(&berthd)
            .args([
                "-t",
                "demo:1",
                "-t",
                "demo:latest",
                "--build-arg",
                "GREETING=hi",
                "--label",
                "extra=yes",
            ])
            .arg(ctx.path()),
    )?;
    assert!(out.contains("Step 1/22 : ARG BASE=busybox"), "{out}");
    assert!(out.contains("Step 3/22 : ARG GREETING=hello"), "{out}");
    assert!(out.contains("Successfully tagged demo:1"), "{out}");
    assert!(out.contains("Successfully tagged demo:latest"), "{out}");
    assert!(out.contains("Successfully built "), "{out}");

    // CMD is the entrypoint's argument; a command replaces it.
    let out = run_ok(berthd.docker().args(["run", "--rm", "demo:1"]))?;
    assert_eq!(out, "default cmd\n");
    let script = "id -u; id -g; pwd; cat run.txt heredoc/out conf.txt /opt/in/file; \
                  stat -c '%u:%g %a' app.txt bin/tool; echo $APP_HOME; tool; \
                  test -e /etc/hostname && echo host || echo nohost; \
                  test -e ignored.txt && echo ignored || echo absent";
    // On --network none berth binds no /etc/hostname (the default bridge does), so
    // the check sees whether the build left one in the image.
    let out =
        run_ok(
            berthd
                .docker()
                .args(["run", "--rm", "--network", "none", "demo:latest", script]),
        )?;
    assert_eq!(
        out,
        "1234\n100\n/srv/app\nhi from run\nheredoc\nkey=hi\nfrom the tar\n33:100 644\n0:0 705\n/srv/app\ntool\nnohost\nabsent\n"
    );

    let inspect = run_ok(berthd.docker().args(["image", "inspect", "demo:1"]))?;
    let v: Value = serde_json::from_str(&inspect)?;
    let c = &v[0]["Config"];
    assert_eq!(c["User"], "builder");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo default cmd"]));
    assert_eq!(c["Labels"]["org.example.name"], "demo app");
    assert_eq!(c["Labels"]["version"], "1");
    assert_eq!(c["Labels"]["extra"], "yes");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");
    assert!(c["ExposedPorts"].get("53/udp").is_some(), "{c}");
    assert!(c["Volumes"].get("/data").is_some(), "{c}");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    let env: Vec<String> = serde_json::from_value(c["Env"].clone())?;
    assert!(env.contains(&"APP_HOME=/srv/app".to_string()), "{env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("PATH=/srv/app/bin:")),
        "{env:?}"
    );
    // Build args are not kept in the image.
    assert!(!env.iter().any(|e| e.starts_with("GREETING")), "{env:?}");

    let history = run_ok(berthd.docker().args([
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "demo:1",
    ]))?;
    assert!(
        history.contains("/bin/sh -c #(nop)  ENV APP_HOME=/srv/app"),
        "{history}"
    );
    assert!(
        history.contains("|2 BASE=busybox GREETING=hi /bin/sh -c echo \"$GREETING from run\"")
            || history.contains("|1 GREETING=hi /bin/sh -c echo \"$GREETING from run\""),
        "{history}"
    );
    Ok(())
}

#[test]
fn failing_run_leaves_nothing_behind() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let images_before = run_ok(berthd.docker().args(["images", "-aq"]))?;
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nENV A=1\nRUN echo before-fail && exit 3\nCMD [\"true\"]\n",
    )?;
    let (code, stdout, stderr) = run(docker_build(&berthd).args(["-t", "broken"]).arg(ctx.path()))?;
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("before-fail"), "{stdout}");
    assert!(
        stderr.contains(
            "The command '/bin/sh -c echo before-fail && exit 3' returned a non-zero code: 3"
        ),
        "{stderr}"
    );
    assert_eq!(run_ok(berthd.docker().args(["ps", "-aq"]))?, "");
    assert_eq!(
        run_ok(berthd.docker().args(["images", "-aq"]))?,
        images_before
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    let root = berthd.root().display().to_string();
    assert!(!mounts.contains(&root), "a mount under {root} is left");
    let snapshots = fs::read_dir(berthd.root().join("snapshots"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(
        !snapshots.iter().any(|s| s.contains("container-")),
        "{snapshots:?}"
    );
    Ok(())
}

#[test]
fn bad_dockerfiles_and_paths_are_refused() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN true\nFOO bar\n",
    )?;
    let (code, _, stderr) = run(docker_build(&berthd).arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("dockerfile parse error line 3: unknown instruction: FOO"),
        "{stderr}"
    );

    // A symlink in the context that leads out of it.
    symlink("/etc", ctx.path().join("outside"))?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY outside/passwd /x\n",
    )?;
    let (code, _, stderr) = run(docker_build(&berthd).arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("forbidden path outside the build context: outside/passwd"),
        "{stderr}"
    );
    // `..` leading out.
    write(ctx.path(), "Dockerfile", "FROM busybox\nCOPY ../x /x\n")?;
    let (code, _, stderr) = run(docker_build(&berthd).arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("forbidden path outside the build context"),
        "{stderr}"
    );
    // WORKDIR where the image has a file fails the build naming it (Docker's classic
    // builder: "Cannot mkdir: /app is not a directory"; BuildKit: "mkdir …/app: not a
    // directory"), whether the file is the base image's or an earlier step's, the
    // directory itself or one of its parents; no image is tagged.
    write(ctx.path(), "f", "a file\n")?;
    for (lines, path) in [
        ("WORKDIR /etc/passwd\n", "/etc/passwd"),
        ("COPY f /app\nWORKDIR /app\n", "/app"),
        ("COPY f /app\nWORKDIR /app/sub\nRUN true\n", "/app"),
        ("RUN ln -s /etc/passwd /pw\nWORKDIR /pw/x\n", "/etc/passwd"),
    ] {
        write(ctx.path(), "Dockerfile", &format!("FROM busybox\n{lines}"))?;
        let (code, _, stderr) = run(docker_build(&berthd).args(["-t", "wd"]).arg(ctx.path()))?;
        assert_ne!(code, 0, "{lines}");
        let want = format!("Cannot mkdir: {path} is not a directory");
        assert!(stderr.contains(&want), "{lines}: want {want:?} in {stderr}");
        let (code, _, _) = run(berthd.docker().args(["image", "inspect", "wd"]))?;
        assert_ne!(code, 0, "{lines}: an image was tagged");
    }
    // A symlink to a directory is followed inside the image, not replaced.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN mkdir /real && ln -s /real /link\nWORKDIR /link/x\nRUN touch here\n",
    )?;
    run_ok(docker_build(&berthd).args(["-t", "wd"]).arg(ctx.path()))?;
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "wd",
        "sh",
        "-c",
        "test -L /link && test -f /real/x/here && echo followed",
    ]))?;
    assert_eq!(out, "followed\n");
    run_ok(berthd.docker().args(["rmi", "wd"]))?;
    // A parameter berth does not apply is refused by name.
    write(ctx.path(), "Dockerfile", "FROM busybox\n")?;
    let (code, _, stderr) = run(docker_build(&berthd)
        .args(["--memory", "64m"])
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(stderr.contains("memory"), "{stderr}");
    assert_eq!(run_ok(berthd.docker().args(["ps", "-aq"]))?, "");
    Ok(())
}

#[test]
fn berth_build_flags() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    let elsewhere = tempfile::tempdir()?;
    write(ctx.path(), "keep.txt", "kept\n")?;
    write(ctx.path(), "drop.txt", "dropped\n")?;
    write(ctx.path(), "docs/a.md", "a\n")?;
    write(ctx.path(), "docs/README.md", "readme\n")?;
    write(
        ctx.path(),
        ".dockerignore",
        "drop.txt\ndocs\n!docs/README.md\n",
    )?;
    // A Dockerfile outside the context; --target stops before the failing stage.
    write(
        elsewhere.path(),
        "Dockerfile",
        "FROM busybox AS base\nARG V=1\nRUN echo \"base $V\" > /base.txt\n\
         FROM base AS final\nCOPY . /ctx/\nCMD [\"cat\", \"/base.txt\"]\n\
         FROM final AS never\nRUN exit 9\n",
    )?;
    let iid = elsewhere.path().join("iid");
    let out = run_ok(
        berthd
            .berth()?
            .args(["build", "-q", "-t", "b1", "-t", "b2:v", "--target", "final"])
            .args(["--build-arg", "V=7", "--label", "l=1", "--iidfile"])
            .arg(&iid)
            .arg("-f")
            .arg(elsewhere.path().join("Dockerfile"))
            .arg(ctx.path()),
    )?;
    let id = fs::read_to_string(&iid)?;
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(out.trim(), id);
    assert_eq!(
        run_ok(berthd.berth()?.args(["run", "--rm", "b2:v"]))?,
        "base 7\n"
    );
    let listing = run_ok(berthd.berth()?.args([
        "run",
        "--rm",
        "b1",
        "sh",
        "-c",
        "cd /ctx && find . -type f | sort",
    ]))?;
    // As with Docker: .dockerignore is in the context, the Dockerfile added from
    // outside it is not.
    assert_eq!(listing, "./.dockerignore\n./docs/README.md\n./keep.txt\n");
    let inspect = run_ok(berthd.docker().args(["image", "inspect", "b1"]))?;
    let v: Value = serde_json::from_str(&inspect)?;
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Config"]["Labels"]["l"], "1");

    // `-f -` with `<Dockerfile>.dockerignore` beside a named Dockerfile.
    write(
        ctx.path(),
        "sub.Dockerfile",
        "FROM busybox\nCOPY drop.txt keep.txt /\n",
    )?;
    write(ctx.path(), "sub.Dockerfile.dockerignore", "keep.txt\n")?;
    let (code, _, stderr) = run(berthd
        .berth()?
        .args(["build", "-f"])
        .arg(ctx.path().join("sub.Dockerfile"))
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(stderr.contains("keep.txt"), "{stderr}");
    let mut child = berthd
        .berth()?
        .args(["build", "-t", "fromstdin", "-f", "-"])
        .arg(ctx.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(
        child.stdin.as_mut().expect("piped stdin"),
        b"FROM busybox\nCOPY keep.txt /\n",
    )?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Step 2/2 : COPY keep.txt /"));
    assert_eq!(
        run_ok(
            berthd
                .berth()?
                .args(["run", "--rm", "fromstdin", "cat", "/keep.txt"])
        )?,
        "kept\n"
    );
    Ok(())
}

#[test]
fn multi_stage_copy_from() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS unneeded\n\
         RUN exit 7\n\
         FROM busybox AS build\n\
         RUN mkdir -p /out && echo built > /out/artifact && ln -s /out/artifact /out/link\n\
         FROM scratch AS bare\n\
         COPY --from=build /out/artifact /artifact\n\
         FROM busybox\n\
         COPY --from=build --chown=www-data:www-data /out/ /app/\n\
         COPY --from=2 /artifact /from-index\n\
         COPY --from=busybox /etc/group /group-from-image\n",
    )?;
    // Only the stages the result needs are built: the failing one is not.
    let built = run_ok(docker_build(&berthd).args(["-t", "multi"]).arg(ctx.path()))?;
    assert!(!built.contains("exit 7"), "{built}");
    assert!(
        built.contains("Step 1/8 : FROM busybox AS build"),
        "{built}"
    );
    let out = run_ok(berthd.docker().args([
        "run",
        "--rm",
        "multi",
        "sh",
        "-c",
        "cat /app/artifact; readlink /app/link; stat -c %U /app/artifact; cat /from-index; head -1 /group-from-image",
    ]))?;
    assert_eq!(out, "built\n/out/artifact\nwww-data\nbuilt\nroot:x:0:\n");
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    let root = berthd.root().display().to_string();
    assert!(!mounts.contains(&root), "a mount under {root} is left");
    // A stage that comes later, or none, is refused by name.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS first\nCOPY --from=later /x /x\nFROM busybox AS later\n",
    )?;
    let (code, _, stderr) = run(docker_build(&berthd)
        .args(["--target", "first"])
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(stderr.contains("invalid from flag value later"), "{stderr}");
    Ok(())
}

/// The steps of a build's output that were served from the cache (1-based).
fn cached_steps(out: &str) -> Vec<usize> {
    out.split("Step ")
        .skip(1)
        .filter(|s| s.contains(" ---> Using cache"))
        .filter_map(|s| s.split('/').next()?.parse().ok())
        .collect()
}

#[test]
fn cache_by_content_and_its_invalidation() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(ctx.path(), "a.txt", "a1\n")?;
    write(ctx.path(), "b.txt", "b1\n")?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nENV X=1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy-a\n\
         COPY b.txt /b.txt\nRUN cat /b.txt > /copy-b\nCMD [\"sh\"]\n",
    )?;
    let build = |extra: &[&str]| -> Result<String> {
        run_ok(
            berthd
                .berth()?
                .args(["build", "-t", "cached"])
                .args(extra)
                .arg(ctx.path()),
        )
    };
    let id = || -> Result<String> {
        run_ok(
            berthd
                .docker()
                .args(["image", "inspect", "-f", "{{.Id}}", "cached"]),
        )
    };
    let first = build(&[])?;
    assert!(cached_steps(&first).is_empty(), "{first}");
    let first_id = id()?;
    let second = build(&[])?;
    assert_eq!(cached_steps(&second), vec![2, 3, 4, 5, 6, 7], "{second}");
    assert_eq!(
        id()?,
        first_id,
        "a build wholly from the cache is the same image"
    );
    // The same content written again (a new mtime) still hits.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(ctx.path(), "a.txt", "a1\n")?;
    assert_eq!(cached_steps(&build(&[])?), vec![2, 3, 4, 5, 6, 7]);
    // A changed file invalidates its COPY and every step after it.
    write(ctx.path(), "b.txt", "b2\n")?;
    let changed = build(&[])?;
    assert_eq!(cached_steps(&changed), vec![2, 3, 4], "{changed}");
    assert_eq!(
        run_ok(
            berthd
                .berth()?
                .args(["run", "--rm", "cached", "cat", "/copy-b"])
        )?,
        "b2\n"
    );
    // --no-cache runs every step.
    let uncached = build(&["--no-cache"])?;
    assert!(cached_steps(&uncached).is_empty(), "{uncached}");
    // A build arg is part of a RUN's key.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nARG V=1\nRUN echo $V > /v\n",
    )?;
    build(&[])?;
    assert_eq!(cached_steps(&build(&[])?), vec![2, 3]);
    assert!(cached_steps(&build(&["--build-arg", "V=2"])?).is_empty());
    Ok(())
}

#[test]
fn docker_commit_makes_a_layer_of_the_changes() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo data > /made && rm /bin/vi",
    ]))?;
    let id = run_ok(berthd.docker().args([
        "commit",
        "-m",
        "a message",
        "-a",
        "someone",
        "-c",
        "ENV COMMITTED=1",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "c1",
        "committed:1",
    ]))?;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        run_ok(berthd.docker().args(["run", "--rm", "committed:1"]))?,
        "data\n"
    );
    assert_eq!(
        run_ok(berthd.docker().args([
            "run",
            "--rm",
            "committed:1",
            "sh",
            "-c",
            "test -e /bin/vi && echo yes || echo no; echo $COMMITTED",
        ]))?,
        "no\n1\n"
    );
    let inspect = run_ok(berthd.docker().args(["image", "inspect", "committed:1"]))?;
    let v: Value = serde_json::from_str(&inspect)?;
    assert_eq!(v[0]["Id"], id.trim());
    assert_eq!(v[0]["Author"], "someone");
    let history =
        run_ok(
            berthd
                .docker()
                .args(["history", "--format", "{{.Comment}}", "committed:1"]),
        )?;
    assert!(history.contains("a message"), "{history}");
    // A change that is no config instruction is refused, nothing made.
    let (code, _, stderr) = run(berthd
        .docker()
        .args(["commit", "-c", "RUN true", "c1", "never:1"]))?;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("run is not a valid change command"),
        "{stderr}"
    );
    let (code, _, _) = run(berthd.docker().args(["image", "inspect", "never:1"]))?;
    assert_ne!(code, 0);
    Ok(())
}

/// `docker commit` of a running container: paused while its layer is written (its
/// `pause` and `unpause` events, in that order, around the commit), running again
/// after; `--pause=false` leaves it running; the image has what it wrote.
#[test]
fn docker_commit_pauses_a_running_container_by_default() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let now = || {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    };
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo written > /state; sleep 1000",
    ]))?;
    let mut waited = 0;
    while run(berthd
        .docker()
        .args(["exec", "live", "test", "-e", "/state"]))?
    .0 != 0
    {
        waited += 1;
        assert!(waited < 100, "the container never wrote /state");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let actions = |since: &str| -> Result<Vec<String>> {
        let out = run_ok(berthd.docker().args([
            "events",
            "--since",
            since,
            "--until",
            &now(),
            "--filter",
            "container=live",
            "--filter",
            "type=container",
            "--format",
            "{{.Action}}",
        ]))?;
        Ok(out.lines().map(str::to_string).collect())
    };

    let t0 = now();
    run_ok(berthd.docker().args(["commit", "live", "live:paused"]))?;
    let seen = actions(&t0)?;
    let pause = seen.iter().position(|a| a == "pause");
    let unpause = seen.iter().position(|a| a == "unpause");
    assert!(
        matches!((pause, unpause), (Some(p), Some(u)) if p < u),
        "events around a default commit: {seen:?}"
    );
    // docker's `commit` event: the container's, naming the new image.
    assert!(
        seen.iter().any(|a| a == "commit"),
        "no commit event of the container: {seen:?}"
    );
    let image_id = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.Id}}", "live:paused"]),
    )?;
    let commit_image = run_ok(berthd.docker().args([
        "events",
        "--since",
        &t0,
        "--until",
        &now(),
        "--filter",
        "container=live",
        "--filter",
        "event=commit",
        "--format",
        "{{index .Actor.Attributes \"imageID\"}}",
    ]))?;
    assert_eq!(commit_image.trim(), image_id.trim());
    assert_eq!(
        run_ok(
            berthd
                .docker()
                .args(["inspect", "-f", "{{.State.Status}}", "live"])
        )?
        .trim(),
        "running"
    );

    let t1 = now();
    run_ok(
        berthd
            .docker()
            .args(["commit", "--pause=false", "live", "live:unpaused"]),
    )?;
    let seen = actions(&t1)?;
    assert!(
        !seen.iter().any(|a| a == "pause" || a == "unpause"),
        "events around a --pause=false commit: {seen:?}"
    );
    for image in ["live:paused", "live:unpaused"] {
        assert_eq!(
            run_ok(
                berthd
                    .docker()
                    .args(["run", "--rm", image, "cat", "/state"])
            )?,
            "written\n",
            "{image}"
        );
    }
    run_ok(berthd.docker().args(["rm", "-f", "live"]))?;
    Ok(())
}

#[test]
fn a_build_whose_client_goes_away_leaves_nothing() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let images_before = run_ok(berthd.docker().args(["images", "-aq"]))?;
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo started && sleep 60\nCMD [\"true\"]\n",
    )?;
    let mut child = docker_build(&berthd)
        .args(["-t", "cancelled"])
        .arg(ctx.path())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    // Wait until the RUN's container runs, then the client goes away.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("started") {
        let n = std::io::Read::read(&mut stdout, &mut buf)?;
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("started"), "{seen}");
    child.kill()?;
    child.wait()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ps = run_ok(berthd.docker().args(["ps", "-aq"]))?;
        if ps.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build container is still there: {ps}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(
        run_ok(berthd.docker().args(["images", "-aq"]))?,
        images_before
    );
    let root = berthd.root().display().to_string();
    loop {
        let mounts = fs::read_to_string("/proc/self/mountinfo")?;
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&root)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mounts under {root} are left: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}

const SDK_BUILD: &str = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
image, logs = c.images.build(path=sys.argv[2], tag="sdkbuilt:1", buildargs={"V": "3"})
text = "".join(l.get("stream", "") for l in logs)
assert "Step 3/4 : RUN" in text, text
assert image.tags == ["sdkbuilt:1"], image.tags
print(c.containers.run("sdkbuilt:1", remove=True).decode(), end="")
# The SDK's default rm=False keeps the RUN step's container, as Docker does.
print(len(c.containers.list(all=True)))
try:
    c.images.build(path=sys.argv[2], dockerfile="Broken.Dockerfile")
    print("no error")
except docker.errors.BuildError as e:
    print("BuildError", e.msg)
except docker.errors.APIError as e:
    print("APIError", e.explanation)
"#;

#[test]
fn python_sdk_builds() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nARG V\nRUN echo \"v=$V\" > /v\nCMD [\"cat\", \"/v\"]\n",
    )?;
    write(
        ctx.path(),
        "Broken.Dockerfile",
        "FROM busybox\nRUN exit 4\n",
    )?;
    let script = ctx.path().join("sdk.py");
    fs::write(&script, SDK_BUILD)?;
    let out = run_ok(
        Command::new("python3")
            .arg(&script)
            .arg(berthd.docker_host())
            .arg(ctx.path()),
    )?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "v=3", "{out}");
    assert_eq!(lines[1], "1", "{out}");
    assert!(
        lines[2].contains("BuildError") && lines[2].contains("returned a non-zero code: 4"),
        "{out}"
    );
    Ok(())
}

#[test]
fn builder_prune_empties_the_cache() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(ctx.path(), "f", "content\n")?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY f /f\nRUN cp /f /g\n",
    )?;
    let build =
        || -> Result<String> { run_ok(berthd.berth()?.args(["build", "-t", "p"]).arg(ctx.path())) };
    build()?;
    assert_eq!(cached_steps(&build()?), vec![2, 3]);
    // Refused without -f, as nothing asks.
    let (code, _, _) = run(berthd.berth()?.args(["builder", "prune"]))?;
    assert_ne!(code, 0);
    let out = run_ok(berthd.berth()?.args(["builder", "prune", "-f"]))?;
    assert!(out.contains("Deleted build cache objects:"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert!(cached_steps(&build()?).is_empty());
    // The docker CLI's prune goes to the same endpoint.
    let out = run_ok(berthd.docker().args(["builder", "prune", "-f"]))?;
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert!(cached_steps(&build()?).is_empty());
    Ok(())
}

#[test]
fn newer_docker_client_builds_with_the_classic_builder() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    let Some(mut docker) = berthd.docker_new() else {
        eprintln!("skipped: /usr/local/bin/docker (the 28.x client) is not installed");
        return Ok(());
    };
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(ctx.path(), "f", "from 28\n")?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY f /f\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n",
    )?;
    let out = run_ok(
        docker
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-t", "new:1"])
            .arg(ctx.path()),
    )?;
    assert!(out.contains("Successfully tagged new:1"), "{out}");
    assert_eq!(
        run_ok(berthd.docker().args(["run", "--rm", "new:1"]))?,
        "from 28\n"
    );
    Ok(())
}
