//! The local driver's options, as Docker's local driver takes them: `type`, `device`
//! and `o` (`volume create -o type=tmpfs -o device=tmpfs -o o=size=64m,mode=1777`,
//! `-o type=none -o o=bind -o device=/srv/data`). A volume with them is a mount of
//! `device` on its data directory, made when a container using it starts and undone
//! when the last such container stops (or the volume is removed); `o`'s flag words
//! (`ro`, `bind`, `nosuid`, …) become mount flags, the rest the mount's data.
//!
//! Everything that can be checked without mounting is checked at create, by name.

use std::collections::BTreeMap;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// A volume's mount, from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMount {
    pub fstype: String,
    pub device: String,
    pub flags: MsFlags,
    /// The options that are not flags, comma-separated.
    pub data: String,
}

const KEYS: [&str; 3] = ["type", "device", "o"];

/// `o`'s words that are mount flags: (word, flag, set or clear).
const FLAGS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("bind", MsFlags::MS_BIND, true),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), true),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
];

/// tmpfs's own options (`man 5 tmpfs`).
const TMPFS_DATA: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "huge",
    "mpol",
    "inode64",
    "inode32",
    "noswap",
];

/// The mount a volume's options ask for; `None` without options (a plain directory).
/// Refused with the option named: an unknown key, a key without the ones it needs,
/// a tmpfs option tmpfs does not have or a bad size or mode, a bind of a relative
/// device path.
pub fn parse(options: &BTreeMap<String, String>) -> Result<Option<LocalMount>, String> {
    if options.is_empty() {
        return Ok(None);
    }
    for key in options.keys() {
        if key == "size" {
            return Err("quota size requested but no quota support".into());
        }
        if !KEYS.contains(&key.as_str()) {
            return Err(format!("invalid option: {key:?}"));
        }
    }
    for (key, needs) in [
        ("device", &["type"][..]),
        ("type", &["device"]),
        ("o", &["device", "type"]),
    ] {
        if options.contains_key(key) {
            if let Some(missing) = needs.iter().find(|n| !options.contains_key(**n)) {
                return Err(format!("missing required option: {missing:?}"));
            }
        }
    }
    let fstype = options.get("type").cloned().unwrap_or_default();
    let device = options.get("device").cloned().unwrap_or_default();
    if fstype.is_empty() || device.is_empty() {
        return Err("the options \"type\" and \"device\" must not be empty".into());
    }
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for word in options
        .get("o")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|w| !w.is_empty())
    {
        match FLAGS.iter().find(|(w, _, _)| *w == word) {
            Some((_, flag, true)) => flags |= *flag,
            Some((_, flag, false)) => flags &= !*flag,
            None => data.push(word.to_string()),
        }
    }
    if flags.contains(MsFlags::MS_BIND) {
        if !device.starts_with('/') {
            return Err(format!(
                "invalid option \"device\": {device:?}: a bind's device must be an absolute path"
            ));
        }
    } else if fstype == "tmpfs" {
        for word in &data {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            if !TMPFS_DATA.contains(&key) {
                return Err(format!(
                    "invalid option \"o\": {key:?} is not a tmpfs option"
                ));
            }
            let ok = match key {
                "size" => size_ok(value),
                "mode" => {
                    !value.is_empty() && u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777)
                }
                "uid" | "gid" | "nr_inodes" | "nr_blocks" => size_ok(value),
                _ => true,
            };
            if !ok {
                return Err(format!("invalid option \"o\": bad value in {word:?}"));
            }
        }
    }
    Ok(Some(LocalMount {
        fstype,
        device,
        flags,
        data: data.join(","),
    }))
}

/// `64m`, `1g`, `50%`, `1048576`.
fn size_ok(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| "kKmMgGtTpPeE%".contains(c));
    !digits.is_empty() && value.len() - digits.len() <= 1 && digits.parse::<u64>().is_ok()
}

impl LocalMount {
    /// Mounts the device on `target` (a read-only bind is bound, then made read-only).
    pub fn mount(&self, target: &Path) -> Result<(), String> {
        let data = (!self.data.is_empty()).then_some(self.data.as_str());
        let fail = |e: nix::Error| {
            format!(
                "failed to mount local volume: mount {}:{}, flags: {:#x}, data: {}: {}",
                self.device,
                target.display(),
                self.flags.bits(),
                self.data,
                e.desc()
            )
        };
        mount(
            Some(self.device.as_str()),
            target,
            Some(self.fstype.as_str()),
            self.flags,
            data,
        )
        .map_err(fail)?;
        if self.flags.contains(MsFlags::MS_BIND) && self.flags.contains(MsFlags::MS_RDONLY) {
            let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | self.flags;
            if let Err(e) = mount(None::<&str>, target, None::<&str>, remount, None::<&str>) {
                let _ = umount2(target, MntFlags::MNT_DETACH);
                return Err(fail(e));
            }
        }
        Ok(())
    }
}

/// Whether something is mounted at `path` (exactly; by the mount table, since a bind
/// from the same filesystem has the same device as its parent).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| unescape(p) == want)
}

/// The mount table's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let octal = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok());
            if let Some(v) = octal {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything mounted at `path` (stacked mounts too); an error when a mount
/// stays.
pub fn unmount_all(path: &Path) -> Result<(), String> {
    for _ in 0..16 {
        if !is_mounted(path) {
            return Ok(());
        }
        umount2(path, MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmounting {}: {}", path.display(), e.desc()))?;
    }
    Err(format!("{} is still mounted", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_parse_as_dockers_local_driver_takes_them() {
        assert_eq!(parse(&opts(&[])), Ok(None));
        let tmpfs = parse(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=64m,mode=1777,noexec"),
        ]));
        assert_eq!(
            tmpfs,
            Ok(Some(LocalMount {
                fstype: "tmpfs".into(),
                device: "tmpfs".into(),
                flags: MsFlags::MS_NOEXEC,
                data: "size=64m,mode=1777".into(),
            }))
        );
        let bind = parse(&opts(&[
            ("type", "none"),
            ("device", "/srv"),
            ("o", "bind,ro"),
        ]));
        assert_eq!(
            bind.ok().flatten().map(|m| m.flags),
            Some(MsFlags::MS_BIND | MsFlags::MS_RDONLY)
        );
        let nfs = parse(&opts(&[
            ("type", "nfs"),
            ("device", ":/x"),
            ("o", "addr=10.0.0.1,rw"),
        ]));
        assert_eq!(
            nfs.ok().flatten().map(|m| m.data),
            Some("addr=10.0.0.1".into())
        );
        for (bad, expected) in [
            (&[("foo", "bar")][..], "invalid option: \"foo\""),
            (&[("size", "1g")], "quota size requested"),
            (&[("type", "tmpfs")], "missing required option: \"device\""),
            (&[("device", "tmpfs")], "missing required option: \"type\""),
            (
                &[("o", "size=1m"), ("device", "tmpfs")],
                "missing required option: \"type\"",
            ),
            (
                &[("type", "tmpfs"), ("device", "tmpfs"), ("o", "bogus=1")],
                "\"bogus\" is not a tmpfs option",
            ),
            (
                &[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=lots")],
                "bad value in \"size=lots\"",
            ),
            (
                &[("type", "tmpfs"), ("device", "tmpfs"), ("o", "mode=999")],
                "bad value in \"mode=999\"",
            ),
            (
                &[("type", "none"), ("device", "rel/dir"), ("o", "bind")],
                "must be an absolute path",
            ),
            (&[("type", ""), ("device", "x")], "must not be empty"),
        ] {
            let err = parse(&opts(bad)).err().unwrap_or_default();
            assert!(err.contains(expected), "{bad:?}: {err}");
        }
    }

    #[test]
    fn mount_table_escapes_are_read() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
