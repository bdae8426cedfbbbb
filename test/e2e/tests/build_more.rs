//! More of `docker build` / `berth build` against berthd: independent stages built at
//! the same time (proved by timestamps their RUN steps write, read back from the
//! final image), the predefined platform ARGs, and a foreign `--platform` refused.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};

fn docker_build(berthd: &Berthd) -> Command {
    let mut cmd = berthd.docker();
    cmd.env("DOCKER_BUILDKIT", "0").arg("build");
    cmd
}

fn write(dir: &Path, name: &str, content: &str) -> Result<()> {
    fs::write(dir.join(name), content)?;
    Ok(())
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn independent_stages_overlap_in_time() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    // Each stage notes when its RUN started and ended, 3 s apart. One after another,
    // the second would start no earlier than the first ended; side by side each starts
    // before the other ends.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS a\n\
         RUN date +%s > /start && sleep 3 && date +%s > /end\n\
         FROM busybox AS b\n\
         RUN date +%s > /start && sleep 3 && date +%s > /end\n\
         FROM busybox\n\
         COPY --from=a /start /a.start\n\
         COPY --from=a /end /a.end\n\
         COPY --from=b /start /b.start\n\
         COPY --from=b /end /b.end\n",
    )?;
    let out = run_ok(
        docker_build(&berthd)
            .args(["--no-cache", "-t", "par"])
            .arg(ctx.path()),
    )?;
    // The output still reads one stage after another, numbered as Docker numbers.
    let a = out.find("Step 2/9 : RUN").expect("stage a's RUN");
    let b = out
        .find("Step 3/9 : FROM busybox AS b")
        .expect("stage b's FROM");
    let last = out.find("Step 5/9 : FROM busybox").expect("the last stage");
    assert!(a < b && b < last, "{out}");
    let times = run_ok(berthd.docker().args([
        "run", "--rm", "par", "cat", "/a.start", "/a.end", "/b.start", "/b.end",
    ]))?;
    let t: Vec<u64> = times
        .lines()
        .map(|l| l.trim().parse())
        .collect::<Result<_, _>>()?;
    assert_eq!(t.len(), 4, "{times}");
    let (a_start, a_end, b_start, b_end) = (t[0], t[1], t[2], t[3]);
    assert!(a_end >= a_start + 3 && b_end >= b_start + 3, "{times}");
    assert!(
        b_start < a_end && a_start < b_end,
        "the stages did not overlap: a {a_start}..{a_end}, b {b_start}..{b_end}"
    );

    // A failing stage fails the build with its own error while its sibling is
    // stopped, and nothing is left.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS slow\n\
         RUN sleep 30\n\
         FROM busybox AS bad\n\
         RUN sleep 1 && exit 3\n\
         FROM busybox\n\
         COPY --from=slow /etc/hostname /x\n\
         COPY --from=bad /etc/hostname /y\n",
    )?;
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run(docker_build(&berthd).args(["-t", "fails"]).arg(ctx.path()))?;
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stderr.contains("The command '/bin/sh -c sleep 1 && exit 3' returned a non-zero code: 3"),
        "{stdout}\n{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the sibling stage was not stopped"
    );
    let ps = run_ok(berthd.docker().args(["ps", "-aq"]))?;
    assert_eq!(ps.trim(), "", "containers left: {ps}");
    let images = run_ok(berthd.docker().args(["images", "-q", "fails"]))?;
    assert_eq!(images.trim(), "");
    Ok(())
}

#[test]
fn platform_args_and_foreign_platforms() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    // The global scope has them without a declaration (FROM --platform uses one); a
    // stage has those it declares.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox\n\
         ARG TARGETPLATFORM\n\
         ARG TARGETOS\n\
         ARG TARGETARCH\n\
         ARG TARGETVARIANT\n\
         ARG BUILDPLATFORM\n\
         ARG BUILDOS\n\
         ARG BUILDARCH\n\
         RUN echo \"$TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM $BUILDOS $BUILDARCH [$BUILDVARIANT]\" > /p\n\
         ENV ARCH=$TARGETARCH\n",
    )?;
    run_ok(
        berthd
            .berth()?
            .args(["build", "-q", "-t", "plat"])
            .arg(ctx.path()),
    )?;
    let arch = host_arch();
    let out = run_ok(berthd.docker().args(["run", "--rm", "plat", "cat", "/p"]))?;
    assert_eq!(
        out,
        format!("linux/{arch} linux {arch} [] linux/{arch} linux {arch} []\n")
    );
    let env =
        run_ok(
            berthd
                .docker()
                .args(["image", "inspect", "-f", "{{json .Config.Env}}", "plat"]),
        )?;
    assert!(env.contains(&format!("\"ARCH={arch}\"")), "{env}");

    // Another platform, on the command line or in FROM, is refused by name.
    let other = if arch == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let (code, _, stderr) = run(docker_build(&berthd)
        .args(["--platform", other, "-t", "foreign"])
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("platform \"{other}\" is not supported")),
        "{stderr}"
    );
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM --platform={other} busybox\nRUN true\n"),
    )?;
    let (code, _, stderr) = run(berthd
        .berth()?
        .args(["build", "-t", "foreign"])
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("platform \"{other}\" is not supported")),
        "{stderr}"
    );
    let images = run_ok(berthd.docker().args(["images", "-q", "foreign"]))?;
    assert_eq!(images.trim(), "");
    Ok(())
}

#[test]
fn run_mounts_and_network() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(ctx.path(), "data.txt", "one\n")?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS tools\n\
         RUN mkdir /tools && echo from-stage > /tools/note\n\
         FROM busybox\n\
         WORKDIR /work\n\
         RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /copied\n\
         RUN --mount=type=bind,from=tools,source=/tools,target=t cat /work/t/note > /stage-note\n\
         RUN --mount=type=cache,target=/var/cache/c echo x >> /var/cache/c/count && wc -l < /var/cache/c/count > /count\n\
         RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/f && grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs > /tmpfs\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo nosecret > /secret\n\
         RUN --network=none tail -n +3 /proc/net/dev | wc -l > /links\n",
    )?;
    let show = "cat /copied /stage-note /count /tmpfs /secret /links; \
                cat /var/cache/c/count /scratch/f 2>/dev/null | wc -l";
    run_ok(docker_build(&berthd).args(["-t", "m1"]).arg(ctx.path()))?;
    let out = run_ok(
        berthd
            .docker()
            .args(["run", "--rm", "m1", "sh", "-c", show]),
    )?;
    assert_eq!(out, "one\nfrom-stage\n1\ntmpfs\nnosecret\n1\n0\n");
    // The cache mount keeps its contents from build to build; a changed file under a
    // bind mount runs its step again.
    write(ctx.path(), "data.txt", "two\n")?;
    let built = run_ok(
        berthd
            .berth()?
            .args(["build", "--no-cache", "-t", "m2"])
            .arg(ctx.path()),
    )?;
    assert!(built.contains("Successfully tagged m2"), "{built}");
    let out = run_ok(
        berthd
            .docker()
            .args(["run", "--rm", "m2", "sh", "-c", show]),
    )?;
    assert_eq!(out, "two\nfrom-stage\n2\ntmpfs\nnosecret\n1\n0\n");
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    let root = berthd.root().display().to_string();
    assert!(!mounts.contains(&root), "a mount under {root} is left");

    // What berth does not do is refused by name.
    for (line, want) in [
        (
            "RUN --mount=type=bind,source=data.txt,target=/d,rw true",
            "type=bind,rw is not supported",
        ),
        (
            "RUN --mount=type=secret,id=tok,required true",
            "secret tok not found",
        ),
        (
            "RUN --mount=type=bind,source=../x,target=/d true",
            "outside the build context",
        ),
    ] {
        write(ctx.path(), "Dockerfile", &format!("FROM busybox\n{line}\n"))?;
        let (code, _, stderr) = run(docker_build(&berthd).args(["-t", "bad"]).arg(ctx.path()))?;
        assert_ne!(code, 0, "{line}");
        assert!(stderr.contains(want), "{line}: {stderr}");
    }
    let ps = run_ok(berthd.docker().args(["ps", "-aq"]))?;
    assert_eq!(ps.trim(), "", "containers left: {ps}");
    Ok(())
}

#[test]
fn progress_plain_shows_step_times() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN sleep 1 && echo slept > /s\nENV A=1\n",
    )?;
    let build = |progress: &str| -> Result<String> {
        run_ok(
            berthd
                .berth()?
                .args(["build", "--progress", progress, "-t", "prog"])
                .arg(ctx.path()),
        )
    };
    let out = build("plain")?;
    let secs: f64 = out
        .split(" ---> Step 2/3 done in ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .ok_or_else(|| anyhow::anyhow!("no time for step 2: {out}"))?
        .parse()?;
    assert!(secs >= 1.0, "{out}");
    assert!(out.contains(" ---> Step 3/3 done in "), "{out}");
    // Cached the second time, and quick.
    let out = build("plain")?;
    assert!(out.contains(" ---> Using cache"), "{out}");
    let out = build("tty")?;
    assert!(!out.contains("done in"), "{out}");
    let (code, _, stderr) = run(berthd
        .berth()?
        .args(["build", "--progress", "fancy"])
        .arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(stderr.contains("fancy"), "{stderr}");
    let out = run_ok(berthd.docker().args(["run", "--rm", "prog", "cat", "/s"]))?;
    assert_eq!(out, "slept\n");
    Ok(())
}

#[test]
fn pull_refreshes_the_base_from_a_loopback_registry() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = berth_fixtures::Registry::start()?;
    let one = berth_fixtures::images::base(&tmp.path().join("base"))?;
    let source = registry.push(&one, "base:1")?;
    let berthd = Berthd::start()?;
    let ctx = tempfile::tempdir()?;
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {source}\nENV BUILT=yes\n"),
    )?;
    // Without --pull a missing base is an error; with it the base is pulled.
    let (code, _, stderr) = run(docker_build(&berthd).args(["-t", "p1"]).arg(ctx.path()))?;
    assert_ne!(code, 0);
    assert!(stderr.contains("pull access denied"), "{stderr}");
    let out = run_ok(
        berthd
            .berth()?
            .args(["build", "--pull", "-t", "p1"])
            .arg(ctx.path()),
    )?;
    assert!(out.contains(&format!("Pulling {source}")), "{out}");
    let env =
        run_ok(
            berthd
                .docker()
                .args(["image", "inspect", "-f", "{{json .Config.Env}}", "p1"]),
        )?;
    assert!(env.contains("\"BUILT=yes\""), "{env}");
    let base_id = run_ok(
        berthd
            .docker()
            .args(["image", "inspect", "-f", "{{.Id}}", &source]),
    )?;
    let p1_layers =
        run_ok(
            berthd
                .docker()
                .args(["image", "inspect", "-f", "{{json .RootFS.Layers}}", "p1"]),
        )?;
    // The docker CLI's --pull, the classic protocol's pull=1, pulls too.
    run_ok(
        docker_build(&berthd)
            .args(["--pull", "-t", "p2"])
            .arg(ctx.path()),
    )?;
    let p2_layers =
        run_ok(
            berthd
                .docker()
                .args(["image", "inspect", "-f", "{{json .RootFS.Layers}}", "p2"]),
        )?;
    assert_eq!(p1_layers, p2_layers);
    assert!(base_id.trim().starts_with("sha256:"), "{base_id}");
    Ok(())
}
