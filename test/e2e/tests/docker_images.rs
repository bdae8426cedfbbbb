//! Image scenarios against a real berthd and Debian's docker-registry on loopback,
//! driven three ways: the `berth` CLI, Debian's docker 20.10 client and the Python
//! `docker` SDK. Each pulls, inspects, tags, pushes (read back by skopeo), saves,
//! removes, loads and imports images, and checks what `info` counts.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{ensure, Context, Result};
use berth_e2e::{binary, require_root, run_ok, Berthd};
use berth_fixtures::registry::Side;
use berth_fixtures::{images, Registry};

fn berth(berthd: &Berthd, config_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(binary("berth")?);
    cmd.env("DOCKER_HOST", berthd.docker_host())
        .env("DOCKER_CONFIG", config_dir);
    Ok(cmd)
}

fn docker(berthd: &Berthd, config_dir: &Path) -> Command {
    let mut cmd = Command::new("/usr/bin/docker");
    cmd.env("DOCKER_HOST", berthd.docker_host())
        .env("DOCKER_CONFIG", config_dir);
    cmd
}

fn failing(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        !out.status.success(),
        "{cmd:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(out)
}

/// The manifest digest skopeo reads back from the registry.
fn registry_digest(registry: &Registry, name: &str) -> Result<String> {
    let mut args = vec![
        "inspect".to_string(),
        "--format".into(),
        "{{.Digest}}".into(),
    ];
    args.extend(registry.skopeo_flags(Side::Plain));
    args.push(format!("docker://{}", registry.image_ref(name)));
    let out = berth_fixtures::registry::skopeo(&args)?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// A busybox root filesystem as a plain tarball.
fn rootfs_tarball(dir: &Path, marker: &str) -> Result<std::path::PathBuf> {
    let root = dir.join(format!("rootfs-{marker}"));
    berth_fixtures::busybox_rootfs(&root)?;
    std::fs::write(root.join("marker"), marker)?;
    let tarball = dir.join(format!("rootfs-{marker}.tar"));
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    )?;
    Ok(tarball)
}

#[test]
fn berth_cli_pull_tag_push_save_load_rmi_import_prune() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("berth-config");
    let registry = Registry::start()?;
    let built = images::base(&tmp.path().join("base"))?;
    let source = registry.push(&built, "base:1")?;
    let berthd = Berthd::start()?;

    let pulled = run_ok(berth(&berthd, &cfg)?.args(["pull", &source]))?;
    assert!(pulled.contains(": Pull complete"), "{pulled}");
    assert!(
        pulled.contains("Status: Downloaded newer image for"),
        "{pulled}"
    );
    let again = run_ok(berth(&berthd, &cfg)?.args(["pull", &source]))?;
    assert!(again.contains(": Already exists"), "{again}");
    assert!(again.contains("Image is up to date"), "{again}");

    let table = run_ok(berth(&berthd, &cfg)?.arg("images"))?;
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.starts_with("REPOSITORY") && header.contains("IMAGE ID"),
        "{table}"
    );
    let repo = format!("{}/base", registry.host());
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&repo) && l.contains(" 1 ")),
        "{table}"
    );

    let id =
        run_ok(berth(&berthd, &cfg)?.args(["image", "inspect", "--format", "{{.Id}}", &source]))?;
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let quiet = run_ok(berth(&berthd, &cfg)?.args(["images", "-q"]))?;
    assert_eq!(quiet.trim(), &id[7..19]);
    let cmd = run_ok(berth(&berthd, &cfg)?.args([
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}}",
        &id[7..19],
    ]))?;
    assert_eq!(cmd.trim(), r#"["/bin/sh"]"#);
    // By digest: the same image, named `repo@sha256:…`, which is not dangling.
    let by_digest = format!(
        "{}/base@{}",
        registry.host(),
        registry_digest(&registry, "base:1")?
    );
    run_ok(berth(&berthd, &cfg)?.args(["pull", &by_digest]))?;
    let same =
        run_ok(berth(&berthd, &cfg)?.args(["image", "inspect", "-f", "{{.Id}}", &by_digest]))?;
    assert_eq!(same.trim(), id);
    let dangling = run_ok(berth(&berthd, &cfg)?.args(["images", "-q", "-f", "dangling=true"]))?;
    assert_eq!(dangling.trim(), "");
    let untag = run_ok(berth(&berthd, &cfg)?.args(["rmi", &by_digest]))?;
    assert_eq!(untag.trim(), format!("Untagged: {by_digest}"));
    // Containers find the image the same ways, with nothing pulled: by the digest of
    // the image pulled by tag, and by an ID prefix.
    for (what, name) in [("by-digest", by_digest.as_str()), ("by-id", &id[7..19])] {
        let out = run_ok(
            berth(&berthd, &cfg)?.args(["run", "--rm", "--pull", "never", name, "echo", what]),
        )?;
        assert_eq!(out, format!("{what}\n"));
    }
    let history = run_ok(berth(&berthd, &cfg)?.args(["history", &source]))?;
    assert!(history.starts_with("IMAGE"), "{history}");
    assert!(history.contains(&id[7..19]), "{history}");

    // Tag and push under another name: skopeo reads back the same manifest.
    let copy = registry.image_ref("copy:2");
    run_ok(berth(&berthd, &cfg)?.args(["tag", &source, &copy]))?;
    let pushed = run_ok(berth(&berthd, &cfg)?.args(["push", &copy]))?;
    assert!(pushed.contains("2: digest: sha256:"), "{pushed}");
    let digest = run_ok(berth(&berthd, &cfg)?.args([
        "image",
        "inspect",
        "-f",
        "{{json .RepoDigests}}",
        &copy,
    ]))?;
    assert!(
        digest.contains(&registry_digest(&registry, "copy:2")?),
        "{digest} vs registry"
    );
    let digests = run_ok(berth(&berthd, &cfg)?.args(["images", "--digests", "--no-trunc"]))?;
    assert!(
        digests.contains(&registry_digest(&registry, "copy:2")?),
        "{digests}"
    );
    assert!(digests.contains(&id), "{digests}");

    // Save, remove (untag, then delete), load back.
    let archive = tmp.path().join("saved.tar");
    run_ok(
        berth(&berthd, &cfg)?
            .args(["save", "-o"])
            .arg(&archive)
            .arg(&copy),
    )?;
    ensure!(
        std::fs::metadata(&archive)?.len() > 100_000,
        "the archive holds busybox"
    );
    let untag = run_ok(berth(&berthd, &cfg)?.args(["rmi", &source]))?;
    assert_eq!(untag.trim(), format!("Untagged: {source}"));
    let removed = run_ok(berth(&berthd, &cfg)?.args(["rmi", &copy]))?;
    assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    assert_eq!(
        run_ok(berth(&berthd, &cfg)?.args(["images", "-q"]))?.trim(),
        ""
    );
    let missing = failing(berth(&berthd, &cfg)?.args(["image", "inspect", &copy]))?;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such image"));
    let loaded = run_ok(berth(&berthd, &cfg)?.args(["load", "-i"]).arg(&archive))?;
    assert_eq!(loaded.trim(), format!("Loaded image: {copy}"));
    let id2 = run_ok(berth(&berthd, &cfg)?.args(["image", "inspect", "-f", "{{.Id}}", &copy]))?;
    assert_eq!(id2.trim(), id);
    let images = run_ok(berth(&berthd, &cfg)?.args(["info", "-f", "{{.Images}}"]))?;
    assert_eq!(images.trim(), "1");

    // Import twice under one name: the first image is left dangling, then pruned.
    let first = rootfs_tarball(tmp.path(), "one")?;
    let imported = run_ok(
        berth(&berthd, &cfg)?
            .args(["import", "--change", r#"CMD ["/bin/cat","/marker"]"#])
            .arg(&first)
            .arg("local/imported:1"),
    )?;
    assert!(imported.trim().starts_with("sha256:"), "{imported}");
    let cmd = run_ok(berth(&berthd, &cfg)?.args([
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}}",
        "local/imported:1",
    ]))?;
    assert_eq!(cmd.trim(), r#"["/bin/cat","/marker"]"#);
    let second = rootfs_tarball(tmp.path(), "two")?;
    run_ok(
        berth(&berthd, &cfg)?
            .arg("import")
            .arg(&second)
            .arg("local/imported:1"),
    )?;
    let dangling =
        run_ok(berth(&berthd, &cfg)?.args(["images", "-q", "--filter", "dangling=true"]))?;
    assert_eq!(
        dangling.trim(),
        &imported.trim()[7..19],
        "the first import is dangling"
    );
    let listed =
        run_ok(berth(&berthd, &cfg)?.args(["images", "--format", "{{.Repository}}:{{.Tag}}"]))?;
    assert!(
        listed.contains("<none>:<none>") && listed.contains("local/imported:1"),
        "{listed}"
    );
    let refused = failing(berth(&berthd, &cfg)?.args(["image", "prune"]))?;
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let pruned = run_ok(berth(&berthd, &cfg)?.args(["image", "prune", "-f"]))?;
    assert!(
        pruned.contains(&format!("deleted: {}", imported.trim())),
        "{pruned}"
    );
    assert_eq!(
        run_ok(berth(&berthd, &cfg)?.args(["images", "-q", "-f", "dangling=true"]))?.trim(),
        ""
    );
    assert_eq!(
        run_ok(berth(&berthd, &cfg)?.args(["info", "-f", "{{.Images}}"]))?.trim(),
        "2"
    );

    // Pulling what the registry does not have is a clear error.
    let unknown = failing(berth(&berthd, &cfg)?.args(["pull", &registry.image_ref("base:nope")]))?;
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("manifest unknown"), "{stderr}");
    Ok(())
}

#[test]
fn docker_cli_pull_tag_push_save_load_rmi_history() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("docker-config");
    let registry = Registry::start()?;
    let built = images::with_labels(&tmp.path().join("img"), &[("team", "berth")])?;
    let source = registry.push(&built, "labelled:1")?;
    let berthd = Berthd::start()?;

    let pulled = run_ok(docker(&berthd, &cfg).args(["pull", &source]))?;
    assert!(
        pulled.contains("Pull complete") || pulled.contains("Downloaded newer image"),
        "{pulled}"
    );
    let id = run_ok(docker(&berthd, &cfg).args(["image", "inspect", "-f", "{{.Id}}", &source]))?;
    let id = id.trim().to_string();
    let ours = run_ok(berth(&berthd, &cfg)?.args(["image", "inspect", "-f", "{{.Id}}", &source]))?;
    assert_eq!(ours.trim(), id);
    let labels =
        run_ok(docker(&berthd, &cfg).args(["images", "-q", "--filter", "label=team=berth"]))?;
    assert_eq!(labels.trim(), &id[7..19]);
    let none =
        run_ok(docker(&berthd, &cfg).args(["images", "-q", "--filter", "label=team=other"]))?;
    assert_eq!(none.trim(), "");
    let table = run_ok(docker(&berthd, &cfg).args([
        "images",
        "--format",
        "{{.Repository}} {{.Tag}} {{.ID}}",
    ]))?;
    assert_eq!(
        table.trim(),
        format!("{}/labelled 1 {}", registry.host(), &id[7..19])
    );
    let history = run_ok(docker(&berthd, &cfg).args(["history", "-q", &source]))?;
    assert_eq!(history.lines().next(), Some(&id[7..19]));

    let target = registry.image_ref("pushed-by-docker:7");
    run_ok(docker(&berthd, &cfg).args(["tag", &source, &target]))?;
    let pushed = run_ok(docker(&berthd, &cfg).args(["push", &target]))?;
    assert!(pushed.contains("7: digest: sha256:"), "{pushed}");
    let digest = registry_digest(&registry, "pushed-by-docker:7")?;
    assert!(pushed.contains(&digest), "{pushed} / {digest}");

    let archive = tmp.path().join("docker-saved.tar");
    run_ok(
        docker(&berthd, &cfg)
            .args(["save", "-o"])
            .arg(&archive)
            .arg(&target),
    )?;
    let conflict = failing(docker(&berthd, &cfg).args(["rmi", &id[7..19]]))?;
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("must be forced") && stderr.contains("multiple repositories"),
        "{stderr}"
    );
    let removed = run_ok(docker(&berthd, &cfg).args(["rmi", "-f", &id[7..19]]))?;
    assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    let loaded = run_ok(docker(&berthd, &cfg).args(["load", "-i"]).arg(&archive))?;
    assert!(
        loaded.contains(&format!("Loaded image: {target}")),
        "{loaded}"
    );
    let info = run_ok(docker(&berthd, &cfg).args(["info", "-f", "{{.Images}}"]))?;
    assert_eq!(info.trim(), "1");

    let search = failing(docker(&berthd, &cfg).args(["search", "busybox"]))?;
    let stderr = String::from_utf8_lossy(&search.stderr);
    assert!(stderr.contains("search is not supported"), "{stderr}");
    let unknown =
        failing(docker(&berthd, &cfg).args(["pull", &registry.image_ref("labelled:nope")]))?;
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("manifest unknown"), "{stderr}");
    Ok(())
}

/// Writes berthd's config so it trusts the TLS registry's CA, and restarts it.
fn trust(berthd: &mut Berthd, registry: &Registry) -> Result<()> {
    let ca = registry.ca_pem().context("a TLS registry has a CA")?;
    std::fs::write(
        berthd.config_path(),
        format!(
            "[registries.\"{}\"]\nca_file = \"{}\"\n",
            registry.host(),
            ca.display()
        ),
    )?;
    berthd.restart()
}

#[test]
fn login_then_pull_and_push_with_tls_and_basic_auth() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = Registry::start_tls_auth("berth", "s3cret")?;
    let built = images::base(&tmp.path().join("base"))?;
    let source = registry.push(&built, "private:1")?;
    let mut berthd = Berthd::start()?;
    trust(&mut berthd, &registry)?;

    // berth CLI.
    let cfg = tmp.path().join("berth-config");
    let denied = failing(berth(&berthd, &cfg)?.args(["pull", &source]))?;
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("401"),
        "{denied:?}"
    );
    let bad = failing(berth(&berthd, &cfg)?.args([
        "login",
        "-u",
        "berth",
        "-p",
        "wrong",
        &registry.host(),
    ]))?;
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("401"),
        "{bad:?}"
    );
    ensure!(
        !cfg.join("config.json").exists(),
        "a failed login stores nothing"
    );
    let ok = run_ok(berth(&berthd, &cfg)?.args([
        "login",
        "-u",
        "berth",
        "-p",
        "s3cret",
        &registry.host(),
    ]))?;
    assert!(ok.contains("Login Succeeded"), "{ok}");
    let stored = std::fs::read_to_string(cfg.join("config.json"))?;
    assert!(
        stored.contains(&registry.host()) && stored.contains("\"auth\""),
        "{stored}"
    );
    run_ok(berth(&berthd, &cfg)?.args(["pull", &source]))?;
    let copy = registry.image_ref("private-copy:1");
    run_ok(berth(&berthd, &cfg)?.args(["tag", &source, &copy]))?;
    run_ok(berth(&berthd, &cfg)?.args(["push", &copy]))?;
    assert!(registry_digest(&registry, "private-copy:1")?.starts_with("sha256:"));
    let out = run_ok(berth(&berthd, &cfg)?.args(["logout", &registry.host()]))?;
    assert!(out.contains("Removing login credentials"), "{out}");
    run_ok(berth(&berthd, &cfg)?.args(["rmi", &source, &copy]))?;
    failing(berth(&berthd, &cfg)?.args(["pull", &source]))?;

    // The docker CLI logs in through berthd's /auth and sends X-Registry-Auth.
    let dcfg = tmp.path().join("docker-config");
    let mut login = docker(&berthd, &dcfg);
    login.args(["login", "-u", "berth", "--password-stdin", &registry.host()]);
    login
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, b"s3cret\n")?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_ok(docker(&berthd, &dcfg).args(["pull", &source]))?;
    let pushed = registry.image_ref("pushed-by-docker:1");
    run_ok(docker(&berthd, &dcfg).args(["tag", &source, &pushed]))?;
    run_ok(docker(&berthd, &dcfg).args(["push", &pushed]))?;
    assert_eq!(
        registry_digest(&registry, "pushed-by-docker:1")?,
        registry_digest(&registry, "private:1")?
    );
    Ok(())
}

const SDK_SCRIPT: &str = r#"
import sys, docker
host, reg, out = sys.argv[1], sys.argv[2], sys.argv[3]
c = docker.DockerClient(base_url=host)
img = c.images.pull(reg + "/sdk", tag="1")
assert img.id.startswith("sha256:"), img.id
assert reg + "/sdk:1" in img.tags, img.tags
assert img.attrs["Config"]["Cmd"] == ["/bin/sh"], img.attrs["Config"]
hist = img.history()
assert hist[0]["Id"] == img.id, hist
assert img.tag(reg + "/sdk-copy", "2")
for line in c.images.push(reg + "/sdk-copy", tag="2", stream=True, decode=True):
    assert "error" not in line, line
with open(out, "wb") as f:
    for chunk in img.save(named=True):
        f.write(chunk)
c.images.remove(reg + "/sdk:1")
c.images.remove(reg + "/sdk-copy:2")
assert c.images.list() == [], c.images.list()
with open(out, "rb") as f:
    loaded = c.images.load(f.read())
assert [i.id for i in loaded] == [img.id], loaded
assert len(c.images.list()) == 1
assert c.info()["Images"] == 1
try:
    c.images.get("nope:1")
    raise SystemExit("nope:1 should not exist")
except docker.errors.ImageNotFound:
    pass
print("sdk ok")
"#;

#[test]
fn python_sdk_pull_tag_push_save_load_remove() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = Registry::start()?;
    let built = images::base(&tmp.path().join("base"))?;
    registry.push(&built, "sdk:1")?;
    let berthd = Berthd::start()?;
    let script = tmp.path().join("sdk.py");
    std::fs::write(&script, SDK_SCRIPT)?;
    let out = run_ok(
        Command::new("python3")
            .arg(&script)
            .arg(berthd.docker_host())
            .arg(registry.host())
            .arg(tmp.path().join("sdk-saved.tar")),
    )
    .with_context(|| berthd.log())?;
    assert_eq!(out.trim(), "sdk ok");
    let digest = registry_digest(&registry, "sdk-copy:2")?;
    assert_eq!(digest, registry_digest(&registry, "sdk:1")?);
    Ok(())
}

#[test]
fn concurrent_pulls_and_loads_of_one_image_all_succeed() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("config");
    let registry = Registry::start()?;
    let built = images::base(&tmp.path().join("base"))?;
    let source = registry.push(&built, "together:1")?;
    let berthd = Berthd::start()?;
    let run_all = |cmds: Vec<Command>| -> Result<()> {
        let children = cmds
            .into_iter()
            .map(|mut c| {
                c.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        for child in children {
            let out = child.wait_with_output()?;
            ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let mut pulls = Vec::new();
    for _ in 0..4 {
        let mut c = berth(&berthd, &cfg)?;
        c.args(["pull", "-q", &source]);
        pulls.push(c);
    }
    run_all(pulls)?;
    let archive = tmp.path().join("together.tar");
    run_ok(
        berth(&berthd, &cfg)?
            .args(["save", "-o"])
            .arg(&archive)
            .arg(&source),
    )?;
    run_ok(berth(&berthd, &cfg)?.args(["rmi", &source]))?;
    let mut loads = Vec::new();
    for _ in 0..4 {
        let mut c = berth(&berthd, &cfg)?;
        c.args(["load", "-q", "-i"]).arg(&archive);
        loads.push(c);
    }
    run_all(loads)?;
    let listed =
        run_ok(berth(&berthd, &cfg)?.args(["images", "--format", "{{.Repository}}:{{.Tag}}"]))?;
    assert_eq!(listed.trim(), source);
    Ok(())
}
