//! `User` (`name`, `uid`, `name:group`, `uid:gid`) resolved against the image's own
//! `/etc/passwd` and `/etc/group`, read inside the root filesystem without following
//! any link out of it: the image is untrusted.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::SpecError;

/// The ids and home the process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `spec` in `rootfs`. Numeric ids need no entry; names must have one.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ExecUser, SpecError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd = parse_passwd(&read_in_root(rootfs, "etc/passwd")?);
    let numeric_uid = user_part.parse::<u32>().ok();
    let matched = passwd.into_iter().find(|p| match numeric_uid {
        Some(uid) => p.uid == uid,
        None => p.name == user_part,
    });
    let mut user = match (&matched, numeric_uid) {
        (Some(p), _) => ExecUser {
            uid: p.uid,
            gid: p.gid,
            additional_gids: Vec::new(),
            home: p.home.clone(),
        },
        (None, Some(uid)) => ExecUser {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/".to_string(),
        },
        (None, None) => {
            return Err(SpecError::User(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            )))
        }
    };
    let needs_groups = group_part.is_some_and(|g| g.parse::<u32>().is_err())
        || (group_part.is_none() && matched.is_some());
    let groups = if needs_groups {
        parse_group(&read_in_root(rootfs, "etc/group")?)
    } else {
        Vec::new()
    };
    match group_part {
        Some(g) => {
            user.gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        SpecError::User(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
            };
        }
        None => {
            if let Some(p) = &matched {
                user.additional_gids = groups
                    .iter()
                    .filter(|g| g.members.iter().any(|m| m == &p.name))
                    .map(|g| g.gid)
                    .collect();
            }
        }
    }
    Ok(user)
}

/// `GroupAdd`: gids as given, names looked up in the image's `/etc/group` (read only
/// when a name needs it); an unknown name is refused, as Docker refuses it.
pub fn additional_groups(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>, SpecError> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let entries = if groups.iter().any(|g| g.parse::<u32>().is_err()) {
        parse_group(&read_in_root(rootfs, "etc/group")?)
    } else {
        Vec::new()
    };
    groups
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => entries
                .iter()
                .find(|e| &e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    SpecError::User(format!(
                        "Unable to find group {g}: no matching entries in group file (GroupAdd)"
                    ))
                }),
        })
        .collect()
}

/// Reads `rel` inside `rootfs`, every symlink resolved as if `rootfs` were `/`.
/// A missing file reads as empty, as an image without `/etc/group` has no groups.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<String, SpecError> {
    let read_err = |e: std::io::Error| SpecError::User(format!("reading /{rel} in the image: {e}"));
    let root = std::fs::File::open(rootfs).map_err(read_err)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    use std::os::fd::AsRawFd;
    let fd = match openat2(root.as_raw_fd(), rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(errno) => return Err(read_err(errno.into())),
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut text = String::new();
    // An /etc/passwd of more than a few MiB is hostile; bound what we read.
    file.take(4 << 20)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    Ok(text)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f
                    .get(5)
                    .map_or("/", |h| if h.is_empty() { "/" } else { h })
                    .to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(err) => panic!("tempdir: {err}"),
        };
        let etc = dir.path().join("etc");
        let write = |name: &str, text: &str| {
            if let Err(err) =
                std::fs::create_dir_all(&etc).and_then(|()| std::fs::write(etc.join(name), text))
            {
                panic!("writing {name}: {err}");
            }
        };
        write("passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n");
        write(
            "group",
            "root:x:0:\nwww-data:x:33:\nusers:x:100:www-data\nadm:x:4:www-data,root\n",
        );
        dir
    }

    fn user(uid: u32, gid: u32, additional: &[u32], home: &str) -> ExecUser {
        ExecUser {
            uid,
            gid,
            additional_gids: additional.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn users_resolve_like_docker() {
        let root = rootfs();
        let r = |spec| resolve(root.path(), spec).map_err(|e| e.to_string());
        assert_eq!(r(""), Ok(user(0, 0, &[4], "/root")));
        assert_eq!(r("www-data"), Ok(user(33, 33, &[100, 4], "/var/www")));
        assert_eq!(r("33"), Ok(user(33, 33, &[100, 4], "/var/www")));
        assert_eq!(r("1000"), Ok(user(1000, 0, &[], "/")));
        assert_eq!(r("33:100"), Ok(user(33, 100, &[], "/var/www")));
        assert_eq!(r("www-data:users"), Ok(user(33, 100, &[], "/var/www")));
        assert_eq!(r("1000:1000"), Ok(user(1000, 1000, &[], "/")));
        assert!(r("ghost").is_err_and(|e| e.contains("unable to find user ghost")));
        assert!(r("33:ghosts").is_err_and(|e| e.contains("unable to find group ghosts")));
    }

    #[test]
    fn added_groups_resolve_in_the_image() {
        let root = rootfs();
        let groups = |g: &[&str]| {
            let g: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            additional_groups(root.path(), &g).map_err(|e| e.to_string())
        };
        assert_eq!(groups(&["1234", "users", "adm"]), Ok(vec![1234, 100, 4]));
        assert_eq!(groups(&[]), Ok(vec![]));
        assert!(groups(&["ghosts"]).is_err_and(|e| e.contains("Unable to find group ghosts")));
    }

    #[test]
    fn passwd_symlinked_out_of_the_rootfs_is_read_inside_it() -> std::io::Result<()> {
        let root = rootfs();
        let etc = root.path().join("etc");
        std::fs::remove_file(etc.join("passwd"))?;
        // An absolute link resolves inside the rootfs, where this target does not
        // exist: no host file is ever read.
        std::os::unix::fs::symlink("/etc/shadow-of-host", etc.join("passwd"))?;
        let r = resolve(root.path(), "root");
        assert!(r.is_err_and(|e| e.to_string().contains("unable to find user root")));
        std::fs::remove_file(etc.join("passwd"))?;
        std::os::unix::fs::symlink("../../../../../etc/passwd-in-root", etc.join("passwd"))?;
        std::fs::write(
            root.path().join("etc/passwd-in-root"),
            "app:x:7:7::/app:/bin/sh\n",
        )?;
        assert_eq!(
            resolve(root.path(), "app").ok(),
            Some(user(7, 7, &[], "/app"))
        );
        Ok(())
    }
}
