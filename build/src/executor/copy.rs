//! COPY and ADD from the build context as a layer tar: sources resolved inside the
//! context (a `..` or a symlink leading out is refused), wildcards, Docker's rules for
//! the destination, `--chown` (names from the image's `/etc/passwd` and `/etc/group`),
//! `--chmod`, heredoc sources, and ADD's extraction of local tar archives.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use tar::{Builder, EntryType, Header};

use super::config::clean;

/// The image's root filesystem as the step sees it (its layers, top first).
pub trait Rootfs {
    /// The host path of `path` in the topmost layer that has it; `None` when absent
    /// or whited out.
    fn find(&self, path: &str) -> Option<PathBuf>;

    fn is_dir(&self, path: &str) -> bool {
        self.find(path)
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_dir())
    }

    fn read(&self, path: &str) -> Option<String> {
        self.find(path).and_then(|p| fs::read_to_string(p).ok())
    }
}

/// Layer directories, top first.
pub struct Layers(pub Vec<PathBuf>);

impl Rootfs for Layers {
    fn find(&self, path: &str) -> Option<PathBuf> {
        let rel = path.trim_start_matches('/');
        for dir in &self.0 {
            let p = if rel.is_empty() {
                dir.clone()
            } else {
                dir.join(rel)
            };
            match fs::symlink_metadata(&p) {
                Ok(m) => {
                    use std::os::unix::fs::FileTypeExt;
                    if m.file_type().is_char_device() && m.rdev() == 0 {
                        return None;
                    }
                    return Some(p);
                }
                Err(_) => continue,
            }
        }
        None
    }
}

/// A COPY/ADD after substitution, destination made absolute.
pub struct CopyStep<'a> {
    pub keyword: &'a str,
    pub sources: Vec<String>,
    /// `(name, content)` of heredoc sources.
    pub heredocs: Vec<(String, String)>,
    pub dest: String,
    pub owner: (u32, u32),
    pub chmod: Option<u32>,
    /// ADD: unpack local tar archives.
    pub extract: bool,
    /// The sources are another stage's or image's root filesystem (`--from`): paths
    /// and symlinks resolve inside it as if it were `/`, instead of being refused.
    pub scoped: bool,
}

fn forbidden(src: &str, full: &Path) -> String {
    format!(
        "forbidden path outside the build context: {src} ({})",
        full.display()
    )
}

/// Resolves `rel` inside `ctx`, following symlinks only while they stay inside.
pub fn resolve(ctx: &Path, src: &str) -> Result<PathBuf, String> {
    resolve_in(ctx, src, false)
}

/// Resolves `src` under `ctx`: refusing what leads out (a build context), or, when
/// `scoped` (a root filesystem), treating `ctx` as `/` for `..` and absolute links.
pub fn resolve_in(ctx: &Path, src: &str, scoped: bool) -> Result<PathBuf, String> {
    let mut parts: Vec<String> = Vec::new();
    let mut pending: Vec<String> = src
        .split('/')
        .rev()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut links = 0;
    while let Some(p) = pending.pop() {
        match p.as_str() {
            "." => continue,
            ".." => {
                if parts.pop().is_none() && !scoped {
                    return Err(forbidden(src, &ctx.join(src)));
                }
                continue;
            }
            _ => {}
        }
        parts.push(p);
        let here = ctx.join(parts.join("/"));
        let Ok(meta) = fs::symlink_metadata(&here) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > 255 {
            return Err(format!("too many links resolving {src}"));
        }
        let target = fs::read_link(&here).map_err(|e| format!("{}: {e}", here.display()))?;
        parts.pop();
        if target.is_absolute() {
            if !scoped {
                return Err(forbidden(src, &target));
            }
            parts.clear();
        }
        // The target's own components, then what remained.
        for c in target.components().rev() {
            match c {
                Component::Normal(n) => pending.push(n.to_string_lossy().into_owned()),
                Component::ParentDir => pending.push("..".into()),
                _ => {}
            }
        }
    }
    Ok(ctx.join(parts.join("/")))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` for one path element.
fn glob(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some(('?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some(('[', rest)) => {
            let Some(end) = rest.iter().position(|c| *c == ']') else {
                return false;
            };
            let Some(c) = name.first() else { return false };
            let (neg, class) = match rest[..end].split_first() {
                Some(('^', r)) => (true, r),
                _ => (false, &rest[..end]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != neg && glob(&rest[end + 1..], &name[1..])
        }
        Some(('\\', rest)) if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && glob(&rest[1..], &name[1..])
        }
        Some((p, rest)) => name.first() == Some(p) && glob(rest, &name[1..]),
    }
}

/// The context paths (relative) a source names: itself, or a wildcard's matches.
pub fn expand_source(ctx: &Path, src: &str, scoped: bool) -> Result<Vec<String>, String> {
    let cleaned = clean(&format!("/{src}"));
    let mut depth = if scoped { i32::MAX / 2 } else { 0 };
    for p in src.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(forbidden(src, &ctx.join(src)));
                }
            }
            _ => depth += 1,
        }
    }
    let rel = cleaned.trim_start_matches('/').to_string();
    if !has_glob(&rel) {
        return Ok(vec![rel]);
    }
    let mut found = vec![String::new()];
    for element in rel.split('/') {
        let mut next = Vec::new();
        for base in &found {
            if !has_glob(element) {
                next.push(join(base, element));
                continue;
            }
            let dir = resolve_in(ctx, base, scoped)?;
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            let pat: Vec<char> = element.chars().collect();
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| glob(&pat, &n.chars().collect::<Vec<_>>()))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join(base, n)));
        }
        found = next;
    }
    Ok(found)
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

struct Writer<'a, W: Write> {
    out: &'a mut Builder<W>,
    owner: (u32, u32),
    chmod: Option<u32>,
}

impl<W: Write> Writer<'_, W> {
    fn header(&self, meta: Option<&fs::Metadata>, kind: EntryType, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let mode = match (self.chmod, kind) {
            (Some(m), EntryType::Regular | EntryType::Directory) => m,
            _ => mode,
        };
        h.set_mode(mode);
        h.set_uid(self.owner.0.into());
        h.set_gid(self.owner.1.into());
        h.set_mtime(meta.map(|m| m.mtime().max(0) as u64).unwrap_or_else(now));
        h
    }

    fn dir(&mut self, meta: Option<&fs::Metadata>, at: &str) -> io::Result<()> {
        let mode = meta.map(|m| m.mode() & 0o7777).unwrap_or(0o755);
        let mut h = self.header(meta, EntryType::Directory, mode);
        h.set_size(0);
        self.out.append_data(
            &mut h,
            format!("{}/", at.trim_start_matches('/')),
            io::empty(),
        )
    }

    /// Copies the host path `src` (not followed if a symlink) to `at`.
    fn copy(&mut self, src: &Path, at: &str) -> io::Result<()> {
        let meta = fs::symlink_metadata(src)?;
        let name = at.trim_start_matches('/');
        if meta.file_type().is_symlink() {
            let mut h = self.header(Some(&meta), EntryType::Symlink, 0o777);
            h.set_size(0);
            self.out.append_link(&mut h, name, fs::read_link(src)?)?;
        } else if meta.is_dir() {
            self.dir(Some(&meta), at)?;
            let mut names: Vec<_> = fs::read_dir(src)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            names.sort();
            for n in names {
                self.copy(
                    &src.join(&n),
                    &format!("{}/{}", at.trim_end_matches('/'), n.to_string_lossy()),
                )?;
            }
        } else if meta.is_file() {
            let mut h = self.header(Some(&meta), EntryType::Regular, meta.mode() & 0o7777);
            h.set_size(meta.len());
            self.out.append_data(&mut h, name, fs::File::open(src)?)?;
        }
        // Devices, fifos and sockets in a context are not copied, as Docker does not.
        Ok(())
    }

    fn file(&mut self, at: &str, content: &[u8], mode: u32) -> io::Result<()> {
        let mut h = self.header(None, EntryType::Regular, mode);
        h.set_size(content.len() as u64);
        self.out
            .append_data(&mut h, at.trim_start_matches('/'), content)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a file is a tar archive ADD unpacks (plain or gzip).
fn archive_reader(path: &Path) -> Option<Box<dyn Read>> {
    let mut magic = [0u8; 262];
    let n = fs::File::open(path).ok()?.read(&mut magic).ok()?;
    let f = fs::File::open(path).ok()?;
    if n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
        return Some(Box::new(flate2::read::MultiGzDecoder::new(f)));
    }
    if n >= 262 && &magic[257..262] == b"ustar" {
        return Some(Box::new(f));
    }
    None
}

/// Copies an archive's entries under `dest` (names cleaned; owners from the archive,
/// as Docker keeps them for ADD of a local tar).
fn extract<W: Write>(
    out: &mut Builder<W>,
    reader: Box<dyn Read>,
    dest: &str,
) -> Result<(), String> {
    let mut ar = tar::Archive::new(reader);
    let entries = ar.entries().map_err(|e| format!("reading archive: {e}"))?;
    for e in entries {
        let mut e = e.map_err(|e| format!("reading archive: {e}"))?;
        let path = e.path().map_err(|e| e.to_string())?.display().to_string();
        let inside = clean(&format!("/{path}"));
        let at = clean(&format!("{dest}/{inside}"));
        let mut h = e.header().clone();
        let kind = h.entry_type();
        let name = if kind == EntryType::Directory {
            format!("{}/", at.trim_start_matches('/'))
        } else {
            at.trim_start_matches('/').to_string()
        };
        if kind == EntryType::Link {
            let target = e
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let target = clean(&format!("{dest}/{}", clean(&format!("/{target}"))));
            out.append_link(&mut h, &name, target.trim_start_matches('/'))
                .map_err(|e| e.to_string())?;
            continue;
        }
        if kind == EntryType::Symlink {
            let target = e
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.to_path_buf())
                .unwrap_or_default();
            out.append_link(&mut h, &name, target)
                .map_err(|e| e.to_string())?;
            continue;
        }
        out.append_data(&mut h, &name, &mut e)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The files a step's sources name: (name in the source, host path), wildcards
/// expanded; a missing source is an error in Docker's words.
pub fn sources(
    kw: &str,
    ctx: &Path,
    given: &[String],
    scoped: bool,
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut sources = Vec::new();
    for s in given {
        let matched = expand_source(ctx, s, scoped)?;
        if matched.is_empty() && has_glob(s) {
            continue;
        }
        for m in matched {
            let host = resolve_in(ctx, &m, scoped)?;
            if fs::symlink_metadata(&host).is_err() {
                return Err(format!(
                    "{kw} failed: file not found in build context or excluded by .dockerignore: stat {m}: file does not exist"
                ));
            }
            sources.push((m, host));
        }
    }
    Ok(sources)
}

/// Writes the step's files into `out`.
pub fn write<W: Write>(
    step: &CopyStep,
    ctx: &Path,
    rootfs: &dyn Rootfs,
    out: W,
) -> Result<W, String> {
    let kw = step.keyword;
    let io_err = |e: io::Error| format!("{kw} failed: {e}");
    let mut builder = Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let sources = sources(kw, ctx, &step.sources, step.scoped)?;
    if sources.is_empty() && step.heredocs.is_empty() {
        return Err(format!("{kw} failed: no source files were specified"));
    }
    let many = sources.len() + step.heredocs.len() > 1;
    let dest_dir_written = step.dest.ends_with('/');
    if many && !dest_dir_written {
        return Err(format!(
            "When using {kw} with more than one source file, the destination must be a directory and end with a /"
        ));
    }
    let dest = clean(&step.dest);
    let into_dir = dest_dir_written
        || rootfs.is_dir(&dest)
        || sources
            .first()
            .and_then(|(_, h)| fs::metadata(h).ok())
            .is_some_and(|m| m.is_dir());
    let mut w = Writer {
        out: &mut builder,
        owner: step.owner,
        chmod: step.chmod,
    };
    // Missing parents of the destination (and the destination directory itself), as
    // 0755 directories owned by the `--chown` owner (root without it), as Docker's
    // builders make them; `--chmod` applies to the destination only.
    let parent_of_targets = if into_dir {
        dest.clone()
    } else {
        Path::new(&dest)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into())
    };
    let mut cur = String::new();
    for part in parent_of_targets.split('/').filter(|p| !p.is_empty()) {
        cur = format!("{cur}/{part}");
        if !rootfs.is_dir(&cur) {
            let chmod = w.chmod;
            if cur != dest {
                w.chmod = None;
            }
            w.dir(None, &cur).map_err(io_err)?;
            w.chmod = chmod;
        }
    }
    for (name, content) in &step.heredocs {
        let at = if into_dir {
            format!("{dest}/{name}")
        } else {
            dest.clone()
        };
        w.file(&at, content.as_bytes(), 0o644).map_err(io_err)?;
    }
    for (rel, host) in &sources {
        // The top-level source is followed (inside the context).
        let meta = fs::metadata(host).map_err(io_err)?;
        if meta.is_dir() {
            let mut names: Vec<_> = fs::read_dir(host)
                .map_err(io_err)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io_err)?;
            names.sort();
            for n in names {
                w.copy(&host.join(&n), &format!("{dest}/{}", n.to_string_lossy()))
                    .map_err(io_err)?;
            }
            continue;
        }
        if step.extract {
            if let Some(reader) = archive_reader(host) {
                extract(w.out, reader, &dest)?;
                continue;
            }
        }
        let base = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let at = if into_dir {
            format!("{dest}/{base}")
        } else {
            dest.clone()
        };
        let mut h = w.header(Some(&meta), EntryType::Regular, meta.mode() & 0o7777);
        h.set_size(meta.len());
        let f = fs::File::open(host).map_err(io_err)?;
        w.out
            .append_data(&mut h, at.trim_start_matches('/'), f)
            .map_err(io_err)?;
    }
    builder.into_inner().map_err(io_err)
}

/// `--chown=user[:group]`: ids, or names from the image's passwd and group files. A
/// user without a group uses the same number for both, as Docker does.
pub fn owner(spec: &str, rootfs: &dyn Rootfs) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, kind: &str| -> Result<u32, String> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        let content = rootfs.read(file).unwrap_or_default();
        content
            .lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                let n = f.next()?;
                let id = f.nth(1)?;
                (n == name).then(|| id.parse::<u32>().ok()).flatten()
            })
            .next()
            .ok_or_else(|| {
                format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {kind} for {kind_name} {name}: no such {kind_name}: {name}",
                    kind_name = if kind == "uid" { "user" } else { "group" }
                )
            })
    };
    let uid = lookup("/etc/passwd", user, "uid")?;
    let gid = match group {
        Some(g) => lookup("/etc/group", g, "gid")?,
        None => uid,
    };
    Ok((uid, gid))
}

/// The owner `USER user[:group]` gives a file: `owner`'s ids, and without a group the
/// user's primary group from the image's passwd (0 when the user is not listed).
pub fn user_owner(spec: &str, rootfs: &dyn Rootfs) -> Result<(u32, u32), String> {
    let (uid, gid) = owner(spec, rootfs)?;
    if spec.contains(':') {
        return Ok((uid, gid));
    }
    let passwd = rootfs.read("/etc/passwd").unwrap_or_default();
    let primary = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && (f[0] == spec || f[2] == uid.to_string()))
            .then(|| f[3].parse::<u32>().ok())
            .flatten()
    });
    Ok((uid, primary.unwrap_or(0)))
}

/// The directories WORKDIR makes for `path` in `rootfs`, parents first, at their paths
/// in the image: a symlink on the way is followed inside the image (as the step's
/// container would see it), so a link to a directory stays a link. A component that
/// exists as anything else (a regular file, a device) fails the step naming it, with
/// the classic builder's wording (BuildKit's is `mkdir <path>: not a directory`);
/// both refuse it rather than replace it. Empty when nothing is missing.
pub fn workdir_dirs(path: &str, rootfs: &dyn Rootfs) -> Result<Vec<String>, String> {
    let mut todo: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    // The walk so far ("" is the root) and what is missing of it.
    let mut cur = String::new();
    let mut missing: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "." => continue,
            ".." => {
                if missing.last() == Some(&cur) {
                    missing.pop();
                }
                cur.truncate(cur.rfind('/').unwrap_or(0));
                continue;
            }
            _ => {}
        }
        let next = format!("{cur}/{part}");
        if !missing.is_empty() {
            missing.push(next.clone());
            cur = next;
            continue;
        }
        let found = rootfs
            .find(&next)
            .and_then(|p| fs::symlink_metadata(&p).ok().map(|m| (p, m)));
        match found {
            None => missing.push(next.clone()),
            Some((_, m)) if m.is_dir() => {}
            Some((host, m)) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(format!(
                        "Cannot mkdir: {path}: too many levels of symbolic links"
                    ));
                }
                let target = fs::read_link(&host)
                    .map_err(|e| format!("WORKDIR failed: reading the link {next}: {e}"))?;
                let target = target.to_string_lossy().into_owned();
                for t in target.split('/').filter(|p| !p.is_empty()).rev() {
                    todo.push_front(t.to_string());
                }
                if target.starts_with('/') {
                    cur.clear();
                }
                continue;
            }
            Some(_) => return Err(format!("Cannot mkdir: {next} is not a directory")),
        }
        cur = next;
    }
    Ok(missing)
}

/// WORKDIR's layer: `dirs` (from [`workdir_dirs`]) as 0755 directories owned by
/// `owner`.
pub fn workdir<W: Write>(dirs: &[String], owner: (u32, u32), out: W) -> Result<W, String> {
    let io_err = |e: io::Error| format!("WORKDIR failed: {e}");
    let mut builder = Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let mut w = Writer {
        out: &mut builder,
        owner,
        chmod: None,
    };
    for d in dirs {
        w.dir(None, d).map_err(io_err)?;
    }
    builder.into_inner().map_err(io_err)
}

/// `--chmod=0755`: octal only.
pub fn mode(spec: &str) -> Result<u32, String> {
    u32::from_str_radix(spec, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid chmod parameter {spec:?}: only octal modes are supported"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    struct Empty;
    impl Rootfs for Empty {
        fn find(&self, path: &str) -> Option<PathBuf> {
            (path == "/").then(|| PathBuf::from("/"))
        }
    }

    fn entries(bytes: &[u8]) -> Vec<(String, u32, u64, u64)> {
        let mut ar = tar::Archive::new(bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                )
            })
            .collect()
    }

    fn step<'a>(sources: &[&str], dest: &str) -> CopyStep<'a> {
        CopyStep {
            keyword: "COPY",
            sources: sources.iter().map(|s| s.to_string()).collect(),
            heredocs: vec![],
            dest: dest.into(),
            owner: (0, 0),
            chmod: None,
            extract: false,
            scoped: false,
        }
    }

    fn ctx() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("src/sub")).unwrap();
        fs::write(t.path().join("src/a.txt"), "a").unwrap();
        fs::write(t.path().join("src/sub/b.txt"), "b").unwrap();
        fs::write(t.path().join("one.json"), "{}").unwrap();
        fs::write(t.path().join("two.json"), "{}").unwrap();
        t
    }

    #[test]
    fn file_dir_and_wildcards() {
        let t = ctx();
        let out = write(
            &step(&["one.json"], "/app/x.json"),
            t.path(),
            &Empty,
            Vec::new(),
        )
        .unwrap();
        let names: Vec<_> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["app/", "app/x.json"]);
        let out = write(&step(&["src"], "/app"), t.path(), &Empty, Vec::new()).unwrap();
        let names: Vec<_> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            vec!["app/", "app/a.txt", "app/sub/", "app/sub/b.txt"]
        );
        let out = write(&step(&["*.json"], "/cfg/"), t.path(), &Empty, Vec::new()).unwrap();
        let names: Vec<_> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["cfg/", "cfg/one.json", "cfg/two.json"]);
    }

    #[test]
    fn owner_and_mode() {
        let t = ctx();
        let mut s = step(&["src/a.txt"], "/d/");
        s.owner = (1000, 1001);
        s.chmod = Some(0o700);
        let out = write(&s, t.path(), &Empty, Vec::new()).unwrap();
        let e = entries(&out);
        assert_eq!(e[0], ("d/".into(), 0o700, 1000, 1001));
        assert_eq!(e[1], ("d/a.txt".into(), 0o700, 1000, 1001));
        // Missing parents of a file destination take the owner, not the mode.
        let out = write(
            &step(&["src/a.txt"], "/p/q/f"),
            t.path(),
            &Empty,
            Vec::new(),
        );
        let e = entries(&out.unwrap());
        assert_eq!(e[0], ("p/".into(), 0o755, 0, 0));
        let mut s = step(&["src/a.txt"], "/p/q/f");
        s.owner = (33, 100);
        s.chmod = Some(0o600);
        let e = entries(&write(&s, t.path(), &Empty, Vec::new()).unwrap());
        assert_eq!(e[0], ("p/".into(), 0o755, 33, 100));
        assert_eq!(e[1], ("p/q/".into(), 0o755, 33, 100));
        assert_eq!(e[2], ("p/q/f".into(), 0o600, 33, 100));
    }

    #[test]
    fn workdir_makes_missing_dirs_for_the_user() {
        let t = tempfile::tempdir().unwrap();
        let dirs = workdir_dirs("/w/x", &Empty).unwrap();
        assert_eq!(dirs, vec!["/w".to_string(), "/w/x".to_string()]);
        let e = entries(&workdir(&dirs, (1000, 100), Vec::new()).unwrap());
        assert_eq!(
            e,
            vec![
                ("w/".into(), 0o755, 1000, 100),
                ("w/x/".into(), 0o755, 1000, 100)
            ]
        );
        fs::create_dir(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "app:x:1000:100::/home/app:/bin/sh\n",
        )
        .unwrap();
        let l = Layers(vec![t.path().to_path_buf()]);
        assert!(workdir_dirs("/etc", &l).unwrap().is_empty());
        assert_eq!(user_owner("app", &l).unwrap(), (1000, 100));
        assert_eq!(user_owner("1000", &l).unwrap(), (1000, 100));
        assert_eq!(user_owner("7", &l).unwrap(), (7, 0));
        assert_eq!(user_owner("7:8", &l).unwrap(), (7, 8));
    }

    #[test]
    fn workdir_refuses_a_file_and_follows_links_in_the_image() {
        let t = tempfile::tempdir().unwrap();
        let (upper, lower) = (t.path().join("upper"), t.path().join("lower"));
        fs::create_dir_all(lower.join("d/sub")).unwrap();
        fs::create_dir_all(lower.join("run")).unwrap();
        fs::create_dir_all(upper.join("var")).unwrap();
        fs::write(lower.join("app"), "file").unwrap();
        fs::write(lower.join("d/f"), "file").unwrap();
        symlink("../run", upper.join("var/run")).unwrap();
        symlink("/app", lower.join("tofile")).unwrap();
        let l = Layers(vec![upper, lower]);
        let e = workdir_dirs("/app", &l).unwrap_err();
        assert_eq!(e, "Cannot mkdir: /app is not a directory");
        let e = workdir_dirs("/d/f/g", &l).unwrap_err();
        assert_eq!(e, "Cannot mkdir: /d/f is not a directory");
        let e = workdir_dirs("/tofile/x", &l).unwrap_err();
        assert_eq!(e, "Cannot mkdir: /app is not a directory");
        // A link to a directory is followed, not replaced by one.
        assert_eq!(workdir_dirs("/var/run/x", &l).unwrap(), vec!["/run/x"]);
        assert!(workdir_dirs("/var/run", &l).unwrap().is_empty());
        assert_eq!(workdir_dirs("/d/sub/n", &l).unwrap(), vec!["/d/sub/n"]);
    }

    #[test]
    fn refusals() {
        let t = ctx();
        symlink("../../etc/passwd", t.path().join("src/out")).unwrap();
        symlink("/etc", t.path().join("abs")).unwrap();
        let e = write(&step(&["../x"], "/"), t.path(), &Empty, Vec::new()).unwrap_err();
        assert!(
            e.starts_with("forbidden path outside the build context: ../x"),
            "{e}"
        );
        let e = write(&step(&["src/out"], "/"), t.path(), &Empty, Vec::new()).unwrap_err();
        assert!(
            e.starts_with("forbidden path outside the build context"),
            "{e}"
        );
        let e = write(&step(&["abs/passwd"], "/"), t.path(), &Empty, Vec::new()).unwrap_err();
        assert!(
            e.starts_with("forbidden path outside the build context"),
            "{e}"
        );
        let e = write(&step(&["nope"], "/"), t.path(), &Empty, Vec::new()).unwrap_err();
        assert!(e.contains("file not found in build context"), "{e}");
        let e = write(
            &step(&["one.json", "two.json"], "/x"),
            t.path(),
            &Empty,
            Vec::new(),
        )
        .unwrap_err();
        assert!(e.contains("must be a directory and end with a /"), "{e}");
        // A symlink staying inside is followed.
        symlink("src/sub", t.path().join("inside")).unwrap();
        assert!(write(&step(&["inside/b.txt"], "/b"), t.path(), &Empty, Vec::new()).is_ok());
        // In a root filesystem (--from), `/` is its root: absolute links resolve there.
        fs::create_dir_all(t.path().join("etc")).unwrap();
        fs::write(t.path().join("etc/passwd"), "p").unwrap();
        assert_eq!(
            resolve_in(t.path(), "abs/passwd", true).unwrap(),
            t.path().join("etc/passwd")
        );
        assert_eq!(
            resolve_in(t.path(), "../../one.json", true).unwrap(),
            t.path().join("one.json")
        );
    }

    #[test]
    fn chown_names() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(t.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let l = Layers(vec![t.path().to_path_buf()]);
        assert_eq!(owner("app", &l).unwrap(), (1000, 1000));
        assert_eq!(owner("app:staff", &l).unwrap(), (1000, 50));
        assert_eq!(owner("7:8", &l).unwrap(), (7, 8));
        assert!(owner("ghost", &l)
            .unwrap_err()
            .contains("no such user: ghost"));
        assert_eq!(mode("0755").unwrap(), 0o755);
        assert!(mode("u+x").is_err());
    }

    #[test]
    fn add_extracts_local_tar() {
        let t = ctx();
        let mut b = Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o640);
        h.set_uid(5);
        h.set_gid(6);
        h.set_mtime(1);
        b.append_data(&mut h, "in/file", &b"hi"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        fs::write(t.path().join("a.tar.gz"), gz.finish().unwrap()).unwrap();
        let mut s = step(&["a.tar.gz"], "/opt/");
        s.keyword = "ADD";
        s.extract = true;
        let out = write(&s, t.path(), &Empty, Vec::new()).unwrap();
        let names: Vec<_> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["opt/", "opt/in/file"]);
    }
}
