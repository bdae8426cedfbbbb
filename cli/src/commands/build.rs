//! `berth build`: the context (a directory, or a tar or a Dockerfile on stdin) sent as
//! a tar to `POST /build`, `.dockerignore` (or `<Dockerfile>.dockerignore`) applied as
//! the docker CLI applies it, and the daemon's progress printed as it comes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_build::dockerignore::Ignore;
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::json;

use super::image_http::{messages, q, send, Call};
use super::Output;

#[derive(Args)]
pub struct BuildArgs {
    /// The build context: a directory, or `-` for a tar (or a Dockerfile) on STDIN.
    pub context: String,
    /// Name and optionally a tag in the `name:tag` format (several allowed).
    #[arg(short, long = "tag")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: `PATH/Dockerfile`; `-` for STDIN).
    #[arg(short, long)]
    pub file: Option<String>,
    /// Set build-time variables (`KEY=value`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Set metadata for an image (`key=value`).
    #[arg(long)]
    pub label: Vec<String>,
    /// Write the image ID to the file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set the networking mode for the RUN instructions during build.
    #[arg(long)]
    pub network: Option<String>,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pub pull: bool,
    /// Type of progress output: `auto`, `tty` (the steps as they come) or `plain`
    /// (also each step's time).
    #[arg(long, value_parser = ["auto", "plain", "tty"])]
    pub progress: Option<String>,
    /// Secret to expose to the build's `RUN --mount=type=secret` steps
    /// (`id=mysecret[,src=/local/secret]`, `type=env,id=ID[,env=VAR]`).
    #[arg(long)]
    pub secret: Vec<String>,
}

/// The most secret content one build may carry: the secrets travel in request
/// headers, which berthd reads into a buffer of about 400 KiB.
const SECRETS_MAX: usize = 256 << 10;

/// One `--secret` as docker buildx reads it: `type=file` (the default) takes `src`
/// (`source`), `type=env` (or an `env=` field) takes the variable `env` names, else
/// `src`, else the id; a file secret without `src` reads the variable named by its id
/// if set, else fails.
fn secret(spec: &str) -> Result<(String, Vec<u8>)> {
    let (mut kind, mut id, mut src, mut env) = ("file".to_string(), None, None, None);
    for field in spec.split(',') {
        let Some((k, v)) = field.split_once('=') else {
            bail!("invalid field '{field}' must be a key=value pair");
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "type" => {
                if v != "file" && v != "env" {
                    bail!("unsupported secret type {v:?}");
                }
                kind = v.to_string();
            }
            "id" => id = Some(v.to_string()),
            "source" | "src" => src = Some(v.to_string()),
            "env" => {
                env = Some(v.to_string());
                kind = "env".into();
            }
            other => bail!("unexpected key '{other}' in '{field}'"),
        }
    }
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        bail!("--secret {spec:?}: an id is required (id=NAME)");
    };
    if kind == "env" {
        let var = env.or(src).unwrap_or_else(|| id.clone());
        let Ok(v) = std::env::var(&var) else {
            bail!("--secret id={id}: the environment variable {var} is not set");
        };
        return Ok((id, v.into_bytes()));
    }
    match src {
        Some(path) => {
            let content =
                fs::read(&path).with_context(|| format!("--secret id={id}: reading src {path}"))?;
            Ok((id, content))
        }
        None => match std::env::var(&id) {
            Ok(v) => Ok((id, v.into_bytes())),
            Err(_) => bail!("--secret id={id}: no src given and no environment variable {id}"),
        },
    }
}

/// The `--secret`s as headers (see docs/build.md): `base64(id):base64(content)`.
fn secret_headers(specs: &[String]) -> Result<Vec<(&'static str, String)>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut total = 0;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for spec in specs {
        let (id, content) = secret(spec)?;
        if !seen.insert(id.clone()) {
            bail!("--secret id={id} is given twice");
        }
        total += content.len();
        if total > SECRETS_MAX {
            bail!(
                "--secret id={id}: the build's secrets pass {} KiB, the most berth carries",
                SECRETS_MAX >> 10
            );
        }
        out.push((
            "x-berth-build-secret",
            format!("{}:{}", b64.encode(id.as_bytes()), b64.encode(&content)),
        ));
    }
    Ok(out)
}

/// A context file Docker's CLI would not send.
fn is_tar_or_gzip(b: &[u8]) -> bool {
    (b.len() >= 2 && b[0] == 0x1f && b[1] == 0x8b) || (b.len() >= 262 && &b[257..262] == b"ustar")
}

fn header_for(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    // As the docker CLI sends them: owned by root.
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

struct Walker<'a, W: Write> {
    root: &'a Path,
    ignore: &'a Ignore,
    out: tar::Builder<W>,
}

impl<W: Write> Walker<'_, W> {
    fn dir(&mut self, rel: &str) -> Result<()> {
        let abs = if rel.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(rel)
        };
        let mut names: Vec<_> = fs::read_dir(&abs)
            .with_context(|| format!("reading {}", abs.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            let name = n.to_string_lossy();
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let path = self.root.join(&child);
            let meta = fs::symlink_metadata(&path)?;
            let excluded = self.ignore.is_excluded(&child);
            if meta.is_dir() {
                if !excluded {
                    let mut h = header_for(&meta, tar::EntryType::Directory);
                    self.out
                        .append_data(&mut h, format!("{child}/"), std::io::empty())?;
                }
                if !excluded || self.ignore.has_exceptions() {
                    self.dir(&child)?;
                }
                continue;
            }
            if excluded || (rel.is_empty() && name == ".dockerignore") {
                continue;
            }
            if meta.file_type().is_symlink() {
                let mut h = header_for(&meta, tar::EntryType::Symlink);
                self.out
                    .append_link(&mut h, &child, fs::read_link(&path)?)?;
            } else if meta.is_file() {
                let mut h = header_for(&meta, tar::EntryType::Regular);
                h.set_size(meta.len());
                self.out
                    .append_data(&mut h, &child, fs::File::open(&path)?)?;
            }
        }
        Ok(())
    }
}

/// The context tar and the Dockerfile's name in it.
fn context(args: &BuildArgs) -> Result<(Vec<u8>, String)> {
    let stdin_dockerfile = args.file.as_deref() == Some("-");
    if args.context == "-" {
        if stdin_dockerfile {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        if is_tar_or_gzip(&input) {
            let name = args.file.clone().unwrap_or_else(|| "Dockerfile".into());
            return Ok((input, name));
        }
        // A Dockerfile alone: a context holding only it.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(input.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, "Dockerfile", input.as_slice())?;
        return Ok((b.into_inner()?, "Dockerfile".into()));
    }
    let root = PathBuf::from(&args.context);
    if !root.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found",
            args.context
        );
    }
    // The Dockerfile: inside the context by its relative name; outside it (or on
    // STDIN), added to the tar under a name of its own, as the docker CLI does.
    let (extra, rel_name, df_path): (Option<Vec<u8>>, String, Option<PathBuf>) =
        match args.file.as_deref() {
            Some("-") => {
                let mut d = Vec::new();
                std::io::stdin().read_to_end(&mut d)?;
                (Some(d), String::new(), None)
            }
            None => (None, "Dockerfile".into(), Some(root.join("Dockerfile"))),
            Some(f) => {
                let p = PathBuf::from(f);
                let abs = fs::canonicalize(&p).with_context(|| {
                    format!("unable to prepare context: the Dockerfile {f} cannot be read")
                })?;
                let croot = fs::canonicalize(&root)?;
                match abs.strip_prefix(&croot) {
                    Ok(rel) => (None, rel.display().to_string(), Some(abs.clone())),
                    Err(_) => (Some(fs::read(&abs)?), String::new(), Some(abs.clone())),
                }
            }
        };
    let ignore_text = df_path
        .as_ref()
        .map(|p| PathBuf::from(format!("{}.dockerignore", p.display())))
        .filter(|p| p.is_file())
        .or_else(|| Some(root.join(".dockerignore")).filter(|p| p.is_file()))
        .map(fs::read_to_string)
        .transpose()?
        .unwrap_or_default();
    let mut ignore = Ignore::parse(&ignore_text).context("reading .dockerignore")?;
    if !rel_name.is_empty() {
        ignore.keep(&rel_name)?;
    }
    ignore.keep(".dockerignore")?;
    let mut w = Walker {
        root: &root,
        ignore: &ignore,
        out: tar::Builder::new(Vec::new()),
    };
    w.dir("")?;
    let mut name = rel_name;
    let mut ignore_file = ignore_text_in_context(&root)?;
    if let Some(d) = extra {
        let nonce: u64 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        name = format!(".dockerfile.{nonce:012x}");
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        w.out.append_data(&mut h, &name, d.as_slice())?;
        // As the docker CLI does: the added Dockerfile is listed in .dockerignore so
        // the daemon leaves it out of the context the steps see.
        let mut text = ignore_file.take().unwrap_or_default();
        text.push_str(&format!("\n{name}\n"));
        ignore_file = Some(text);
    }
    if let Some(text) = ignore_file {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        w.out
            .append_data(&mut h, ".dockerignore", text.as_bytes())?;
    }
    Ok((w.out.into_inner()?, name))
}

/// The context's own `.dockerignore`, sent as it is.
fn ignore_text_in_context(root: &Path) -> Result<Option<String>> {
    let p = root.join(".dockerignore");
    if p.is_file() {
        Ok(Some(fs::read_to_string(&p)?))
    } else {
        Ok(None)
    }
}

fn pairs(items: &[String], what: &str, from_env: bool) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), Some(v.to_string()));
            }
            None if from_env => {
                out.insert(i.clone(), std::env::var(i).ok());
            }
            None => {
                out.insert(i.clone(), Some(String::new()));
            }
        }
        if i.starts_with('=') {
            bail!("invalid argument {i:?} for \"--{what}\" flag");
        }
    }
    Ok(out)
}

pub async fn build(host: &str, args: &BuildArgs) -> Result<Output> {
    let headers = secret_headers(&args.secret)?;
    let (tar, dockerfile) = context(args)?;
    let mut path = format!("/build?dockerfile={}", q(&dockerfile));
    for t in &args.tag {
        path.push_str(&format!("&t={}", q(t)));
    }
    let build_args = pairs(&args.build_arg, "build-arg", true)?;
    if !build_args.is_empty() {
        path.push_str(&format!("&buildargs={}", q(&json!(build_args).to_string())));
    }
    let labels = pairs(&args.label, "label", false)?;
    if !labels.is_empty() {
        path.push_str(&format!("&labels={}", q(&json!(labels).to_string())));
    }
    if let Some(t) = &args.target {
        path.push_str(&format!("&target={}", q(t)));
    }
    if let Some(n) = &args.network {
        path.push_str(&format!("&networkmode={}", q(n)));
    }
    if let Some(p) = &args.platform {
        path.push_str(&format!("&platform={}", q(p)));
    }
    if args.no_cache {
        path.push_str("&nocache=1");
    }
    if args.pull {
        path.push_str("&pull=1");
    }
    if let Some(p) = &args.progress {
        path.push_str(&format!("&progress={}", q(p)));
    }
    if args.quiet {
        path.push_str("&q=1");
    }
    let resp = send(
        host,
        Call {
            method: Method::POST,
            path,
            headers,
            body: Some(("application/x-tar", Bytes::from(tar))),
        },
    )
    .await?;
    let mut id = String::new();
    let quiet = args.quiet;
    let streamed = messages(resp, |m| {
        if let Some(i) = m["aux"]["ID"].as_str() {
            id = i.to_string();
        }
        if !quiet {
            if let Some(s) = m["stream"].as_str() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(s.as_bytes());
                let _ = out.flush();
            }
        }
    })
    .await;
    streamed?;
    if id.is_empty() {
        bail!("the daemon did not report the built image's ID");
    }
    if let Some(f) = &args.iidfile {
        fs::write(f, &id).with_context(|| format!("writing the image ID to {}", f.display()))?;
    }
    Ok(Output::text(if quiet {
        format!("{id}\n")
    } else {
        String::new()
    }))
}

/// `berth builder prune`.
pub async fn prune(client: &crate::client::Client, all: bool, force: bool) -> Result<Output> {
    if !force {
        bail!(
            "WARNING! This will remove all dangling build cache.\nberth asks no questions: pass -f/--force to prune"
        );
    }
    let path = format!("/build/prune?all={}", all as u8);
    let v = client.post_json(&path, None).await?;
    let mut out = String::new();
    let deleted = v["CachesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted build cache objects:\n");
        for d in deleted {
            out.push_str(d.as_str().unwrap_or(""));
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        crate::units::human_size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0), 4)
    ));
    Ok(Output::text(out))
}
