//! The container's user as ids, for `cp -a` (`copyUIDGID`): numbers as given, names
//! looked up in the container's own `/etc/passwd` and `/etc/group`.

use std::io::Read;
use std::path::Path;

use super::fsutil::open_in_root;
use super::view::View;
use super::ArchiveError;

pub fn resolve(view: &View, user: &str) -> Result<(u32, u32), ArchiveError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read(view, "/etc/passwd");
    let (uid, primary) = if u.is_empty() {
        (0, 0)
    } else if let Ok(n) = u.parse::<u32>() {
        let primary = find(&passwd, |f| f.get(2) == Some(&u))
            .and_then(|f| f.get(3).and_then(|g| g.parse().ok()))
            .unwrap_or(0);
        (n, primary)
    } else {
        let f = find(&passwd, |f| f.first() == Some(&u)).ok_or_else(|| {
            ArchiveError::Invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?;
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        (num(2), num(3))
    };
    let gid = match g {
        None | Some("") => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = read(view, "/etc/group");
                find(&group, |f| f.first() == Some(&g))
                    .and_then(|f| f.get(2).and_then(|v| v.parse().ok()))
                    .ok_or_else(|| {
                        ArchiveError::Invalid(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?
            }
        },
    };
    Ok((uid, gid))
}

fn read(view: &View, path: &str) -> String {
    let mut s = String::new();
    if let Ok(fd) = open_in_root(view.root(), Path::new(path), libc::O_RDONLY) {
        let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
    }
    s
}

fn find<'a>(text: &'a str, pred: impl Fn(&Vec<&'a str>) -> bool) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| pred(f))
}
