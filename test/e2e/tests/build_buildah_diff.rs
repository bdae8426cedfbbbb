//! Differential test of `berth build` against Debian's buildah (`buildah bud --format
//! docker`): the same Dockerfiles, on the same base image (the host's busybox imported
//! into berth, saved with `berth save` and pulled into buildah's private storage from
//! that docker-archive, so nothing is fetched), both results exported as
//! docker-archives (`berth save`, `buildah push … docker-archive:`), and compared:
//! the image config field by field and the flattened file trees (layers applied in
//! order with their whiteouts) file by file: path, type, mode, owner, size, content,
//! symlink target.
//!
//! Every difference must be listed in `EXPECTED` with its reason (where buildah
//! departs from Docker); an unlisted difference fails the test, and so does a listed
//! one that no longer occurs, so the list stays true.
//!
//! buildah runs rootful with `--isolation chroot` (no runtime or network setup), the
//! `vfs` driver (no mounts left behind) and its storage under a temp dir.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};
use serde_json::Value;

/// The base image's name in buildah's storage: a `localhost/` name, so no registry is
/// ever asked.
const BUILDAH_BASE: &str = "localhost/diffbase:latest";

/// One Dockerfile of the set, with the files of its context.
struct Case {
    name: &'static str,
    dockerfile: &'static str,
    files: &'static [(&'static str, &'static str, u32)],
    /// Tars made from `files` entries below `payload/` (name, gzip).
    tars: &'static [(&'static str, bool)],
}

const CASES: &[Case] = &[
    Case {
        name: "multistage",
        dockerfile: r#"ARG BASE
ARG SUFFIX=one
FROM ${BASE} AS builder
ARG SUFFIX
RUN mkdir -p /out/sub && echo "built $SUFFIX" > /out/sub/a && ln -s a /out/sub/link \
 && chmod 751 /out/sub && chown 7:8 /out/sub/a
FROM ${BASE} AS other
CMD ["from-other"]
FROM other
COPY --from=builder /out /app
COPY --from=builder /out/sub/a /single
ENTRYPOINT echo entry
"#,
        files: &[],
        tars: &[],
    },
    Case {
        name: "chown",
        dockerfile: r#"ARG BASE
FROM ${BASE}
COPY --chown=1234:5678 a.txt /ids/
COPY --chown=www-data:users b.txt /names/deep/b
COPY --chown=nobody dir/ /x/dirc/
COPY --chown=nobody dir/ /dirc/
COPY --chmod=0600 a.txt /modes/a
COPY a.txt b.txt /both/
"#,
        files: &[
            ("a.txt", "a\n", 0o644),
            ("b.txt", "bee\n", 0o755),
            ("dir/x", "x\n", 0o640),
            ("dir/deep/y", "y\n", 0o600),
        ],
        tars: &[],
    },
    Case {
        name: "add-tar",
        dockerfile: r#"ARG BASE
FROM ${BASE}
ADD files.tar /t/
ADD files.tar.gz /tgz
ADD plain.txt /p/
ADD --chown=3:4 files.tar /chowned/
"#,
        files: &[
            ("plain.txt", "plain\n", 0o644),
            ("payload/top", "top\n", 0o640),
            ("payload/d/inner", "inner\n", 0o755),
        ],
        tars: &[("files.tar", false), ("files.tar.gz", true)],
    },
    Case {
        name: "user-workdir-volume",
        dockerfile: r#"ARG BASE
FROM ${BASE}
WORKDIR /a/b/c
WORKDIR rel
RUN touch made-here
USER 1000:1000
WORKDIR /after/user
VOLUME /data /logs
VOLUME ["/v2"]
USER nobody
"#,
        files: &[],
        tars: &[],
    },
    Case {
        name: "env",
        dockerfile: r#"ARG BASE
FROM ${BASE}
ARG FROMARG=argval
ENV A=1 EMPTY=
ENV B=${A:-x} C=${UNSET:-dflt} D=${A:+set} E=${UNSET:+set} F=${EMPTY:-e} G="$A and ${A}"
ENV H=${EMPTY:+y} I=$FROMARG
ENV PATH=/opt/bin:$PATH
WORKDIR /w/${A}
LABEL l1=${C} "l 2"="two words"
EXPOSE 80 443/tcp 53/udp
RUN echo "$B $C $D $E $F $G $I" > /env.txt
"#,
        files: &[],
        tars: &[],
    },
    Case {
        name: "config",
        dockerfile: r#"ARG BASE
FROM ${BASE}
SHELL ["/bin/sh", "-ec"]
RUN echo shell > /shell.txt
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=4 CMD ["true"]
ENTRYPOINT ["/bin/echo", "e"]
CMD run args
ONBUILD RUN echo child
LABEL maintainer=tests
"#,
        files: &[],
        tars: &[],
    },
];

/// buildah, like BuildKit, writes the default PATH into the config of an image whose
/// base has none; Docker's classic builder, whose protocol berth serves, does not (its
/// RUN containers get that PATH from the daemon, the image config stays as the base's).
/// The base here is busybox imported without a config, so every case shows it.
const DEFAULT_PATH: &str = "buildah adds the default PATH to a config without one (BuildKit too); \
     Docker's classic builder does not, and berth follows it";

/// buildah's chroot isolation leaves the mount points of a RUN step's /etc/hosts and
/// /etc/resolv.conf (empty files) and /run in the layer; Docker's builders do not.
const RUN_MOUNT_POINTS: &str =
    "buildah --isolation chroot leaves RUN's mount points in the layer; Docker does not";

/// Differences known and why: (case, what: `config.<Field>` or a path, reason).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("multistage", "config.Env", DEFAULT_PATH),
    ("chown", "config.Env", DEFAULT_PATH),
    ("add-tar", "config.Env", DEFAULT_PATH),
    ("user-workdir-volume", "config.Env", DEFAULT_PATH),
    ("config", "config.Env", DEFAULT_PATH),
    // `ENV PATH=/opt/bin:$PATH` on a base without PATH: berth (as the classic
    // builder) expands `$PATH` to nothing; buildah has its default PATH there, and
    // puts PATH first where it added it.
    ("env", "config.Env", DEFAULT_PATH),
    // Docker documents that COPY makes files with UID and GID 0 unless --chown says
    // otherwise (the classic builder chowns `COPY --from` to root too); buildah, as
    // BuildKit, keeps the owner the file had in the source stage (7:8).
    (
        "multistage",
        "/app/sub/a",
        "buildah keeps COPY --from's source owner; Docker's documented rule is 0:0",
    ),
    (
        "multistage",
        "/single",
        "buildah keeps COPY --from's source owner; Docker's documented rule is 0:0",
    ),
    // Docker documents that SHELL applies to the shell form of CMD (`CMD run args`
    // after `SHELL ["/bin/sh", "-ec"]` is `["/bin/sh", "-ec", "run args"]`), as berth
    // writes it; buildah 1.28 uses `/bin/sh -c` whatever SHELL says.
    (
        "config",
        "config.Cmd",
        "buildah ignores SHELL for CMD's shell form; Docker documents that SHELL applies",
    ),
    ("user-workdir-volume", "/etc/hosts", RUN_MOUNT_POINTS),
    ("user-workdir-volume", "/etc/resolv.conf", RUN_MOUNT_POINTS),
    ("user-workdir-volume", "/run", RUN_MOUNT_POINTS),
    ("env", "/etc/hosts", RUN_MOUNT_POINTS),
    ("env", "/etc/resolv.conf", RUN_MOUNT_POINTS),
    ("env", "/run", RUN_MOUNT_POINTS),
    ("config", "/etc/hosts", RUN_MOUNT_POINTS),
    ("config", "/etc/resolv.conf", RUN_MOUNT_POINTS),
    ("config", "/run", RUN_MOUNT_POINTS),
];

fn write_context(case: &Case, dir: &Path) -> Result<()> {
    fs::write(dir.join("Dockerfile"), case.dockerfile)?;
    for (name, content, mode) in case.files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().context("no parent")?)?;
        fs::write(&p, content)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
    }
    for (name, gzip) in case.tars {
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(dir.join("payload"))
                .args(["--owner=1001", "--group=1002", "--numeric-owner"])
                .arg(if *gzip { "-czf" } else { "-cf" })
                .arg(dir.join(name))
                .arg("."),
        )?;
    }
    if !case.tars.is_empty() {
        // Not sent to the builders: the tars carry it.
        fs::write(dir.join(".dockerignore"), "payload\n")?;
    }
    Ok(())
}

/// A private buildah: storage, run root and registries config under one temp dir.
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .env("BUILDAH_ISOLATION", "chroot")
            // No registries: a short name can never go out.
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.path().join("registries.conf"),
            );
        c
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        // vfs storage holds plain directories; remove buildah's records first so
        // nothing refers to them.
        let _ = self.cmd().args(["rm", "--all"]).output();
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
    }
}

/// One file of a flattened tree.
#[derive(Debug, PartialEq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: Option<u64>,
    target: Option<String>,
}

/// Unpacks a docker-archive of one image into `work`: its config and its layers
/// applied in order into `work/rootfs` (whiteouts and opaque directories honoured).
fn flatten(archive: &Path, work: &Path) -> Result<(Value, PathBuf)> {
    let x = work.join("archive");
    let rootfs = work.join("rootfs");
    fs::create_dir_all(&x)?;
    fs::create_dir_all(&rootfs)?;
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&x)
            .arg("-xf")
            .arg(archive),
    )?;
    let manifest: Value = serde_json::from_slice(&fs::read(x.join("manifest.json"))?)?;
    let m = &manifest[0];
    let config_path = m["Config"].as_str().context("manifest without Config")?;
    let config: Value = serde_json::from_slice(&fs::read(x.join(config_path))?)?;
    for layer in m["Layers"].as_array().context("manifest without Layers")? {
        let layer = x.join(layer.as_str().context("layer path")?);
        let list = run_ok(Command::new("tar").arg("-tf").arg(&layer))?;
        for name in list.lines() {
            let name = name.trim_start_matches("./").trim_end_matches('/');
            let path = Path::new(name);
            let Some(base) = path.file_name().and_then(|b| b.to_str()) else {
                continue;
            };
            let parent = rootfs.join(path.parent().unwrap_or(Path::new("")));
            if base == ".wh..wh..opq" {
                if let Ok(rd) = fs::read_dir(&parent) {
                    for e in rd.flatten() {
                        remove_any(&e.path())?;
                    }
                }
            } else if let Some(gone) = base.strip_prefix(".wh.") {
                remove_any(&parent.join(gone))?;
            }
        }
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .args([
                    "--numeric-owner",
                    "--same-owner",
                    "-p",
                    "--exclude=.wh.*",
                    "-xf",
                ])
                .arg(&layer),
        )?;
    }
    Ok((config, rootfs))
}

fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p)?,
        Ok(_) => fs::remove_file(p)?,
        Err(_) => {}
    }
    Ok(())
}

fn walk(root: &Path) -> Result<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel))? {
            let e = e?;
            let rel = rel.join(e.file_name());
            let m = fs::symlink_metadata(e.path())?;
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                stack.push(rel.clone());
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            };
            out.insert(
                format!("/{}", rel.display()),
                Entry {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    size: ft.is_file().then_some(m.size()),
                    target: ft
                        .is_symlink()
                        .then(|| fs::read_link(e.path()).map(|t| t.display().to_string()))
                        .transpose()?,
                },
            );
        }
    }
    Ok(out)
}

/// The config fields compared; `null`, `""`, `[]` and `{}` all mean "not set" (the
/// two tools write an unset field in different ones of these forms).
const FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Volumes",
    "ExposedPorts",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Every difference between the two results, as (what, description).
fn compare(berth: &(Value, PathBuf), buildah: &(Value, PathBuf)) -> Result<Vec<(String, String)>> {
    let mut diffs = Vec::new();
    for f in FIELDS {
        let a = &berth.0["config"][f];
        let mut b = buildah.0["config"][f].clone();
        if *f == "Labels" {
            // buildah stamps its version on every image; Docker does not.
            if let Some(o) = b.as_object_mut() {
                o.remove("io.buildah.version");
            }
        }
        if !(unset(a) && unset(&b)) && *a != b {
            diffs.push((format!("config.{f}"), format!("berth {a} / buildah {b}")));
        }
    }
    let ta = walk(&berth.1)?;
    let tb = walk(&buildah.1)?;
    for (path, ea) in &ta {
        match tb.get(path) {
            None => diffs.push((path.clone(), format!("only in berth's image: {ea:?}"))),
            Some(eb) if ea != eb => {
                diffs.push((path.clone(), format!("berth {ea:?} / buildah {eb:?}")))
            }
            Some(_) if ea.kind == "file" => {
                let rel = path.trim_start_matches('/');
                if fs::read(berth.1.join(rel))? != fs::read(buildah.1.join(rel))? {
                    diffs.push((path.clone(), "contents differ".to_string()));
                }
            }
            Some(_) => {}
        }
    }
    for (path, eb) in &tb {
        if !ta.contains_key(path) {
            diffs.push((path.clone(), format!("only in buildah's image: {eb:?}")));
        }
    }
    Ok(diffs)
}

fn buildah_usable() -> Option<String> {
    match Command::new("buildah").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "buildah --version failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(format!("buildah is not installed ({e}); run hack/deps.sh")),
    }
}

#[test]
fn berth_build_matches_buildah() -> Result<()> {
    require_root();
    if let Some(why) = buildah_usable() {
        eprintln!("skipping: {why}");
        return Ok(());
    }
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let work = tempfile::tempdir()?;
    let base_tar = work.path().join("base.tar");
    run_ok(
        berthd
            .berth()?
            .args(["save", "-o"])
            .arg(&base_tar)
            .arg("busybox"),
    )?;

    let buildah = Buildah {
        dir: tempfile::tempdir()?,
    };
    fs::write(
        buildah.dir.path().join("registries.conf"),
        "unqualified-search-registries = []\n",
    )?;
    let id = run_ok(
        buildah
            .cmd()
            .args(["pull", "-q"])
            .arg(format!("docker-archive:{}", base_tar.display())),
    )?;
    run_ok(buildah.cmd().args(["tag", id.trim(), BUILDAH_BASE]))?;

    let mut unexpected = Vec::new();
    let mut seen = Vec::new();
    for case in CASES {
        let dir = work.path().join(case.name);
        let ctx = dir.join("ctx");
        fs::create_dir_all(&ctx)?;
        write_context(case, &ctx)?;
        let tag = format!("diff-{}", case.name);

        run_ok(
            berthd
                .berth()?
                .args(["build", "-q", "-t", &tag, "--build-arg", "BASE=busybox"])
                .arg(&ctx),
        )
        .with_context(|| format!("berth build of case {}", case.name))?;
        let berth_tar = dir.join("berth.tar");
        run_ok(
            berthd
                .berth()?
                .args(["save", "-o"])
                .arg(&berth_tar)
                .arg(&tag),
        )?;

        run_ok(
            buildah
                .cmd()
                .args(["bud", "-q", "--format", "docker", "--isolation", "chroot"])
                .args(["--pull=never", "--layers=false", "-t", &tag])
                .arg(format!("--build-arg=BASE={BUILDAH_BASE}"))
                .arg(&ctx),
        )
        .with_context(|| format!("buildah bud of case {}", case.name))?;
        let buildah_tar = dir.join("buildah.tar");
        run_ok(
            buildah
                .cmd()
                .args(["push", "-q", &tag])
                .arg(format!("docker-archive:{}:{tag}", buildah_tar.display())),
        )?;

        let a = flatten(&berth_tar, &dir.join("berth"))?;
        let b = flatten(&buildah_tar, &dir.join("buildah"))?;
        for (what, desc) in compare(&a, &b)? {
            let known = EXPECTED
                .iter()
                .find(|(c, w, _)| *c == case.name && *w == what);
            match known {
                Some(k) => seen.push(*k),
                None => unexpected.push(format!("{}: {what}: {desc}", case.name)),
            }
        }
        // Everything compared is gone before the next case: the trees are large.
        fs::remove_dir_all(&dir)?;
    }
    let stale: Vec<_> = EXPECTED.iter().filter(|e| !seen.contains(e)).collect();
    if !unexpected.is_empty() || !stale.is_empty() {
        bail!(
            "differences not explained:\n{}\nexpected differences that did not occur: {stale:?}",
            unexpected.join("\n")
        );
    }
    Ok(())
}
