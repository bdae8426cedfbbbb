//! Layer application against real layers (the fixtures' multi-layer image) and hostile
//! tars; as root, so owners, device nodes and trusted xattrs are real.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Result;
use berth_fixtures::images::{self, multi_layer_expect as e};
use berth_snapshotter::{apply_layer, ApplyOptions};

fn layer_reader(layout: &Path, digest: &str) -> Result<Box<dyn Read>> {
    let hex = digest.trim_start_matches("sha256:");
    let file = fs::File::open(layout.join("blobs/sha256").join(hex))?;
    Ok(Box::new(flate2::read::MultiGzDecoder::new(file)))
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and a buffer of buf.len() bytes.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn multi_layer_whiteouts_links_owners() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    let img = images::multi_layer(&dir.path().join("layout"))?;
    let mut dests = Vec::new();
    for (i, layer) in img.layers.iter().enumerate() {
        let dest = dir.path().join(format!("l{i}"));
        fs::create_dir(&dest)?;
        let mut r = layer_reader(&img.layout, &layer.digest)?;
        apply_layer(&mut r, &dest, &ApplyOptions::default())?;
        dests.push(dest);
    }
    let l2 = &dests[1];
    let wh = fs::symlink_metadata(l2.join(e::DELETED))?;
    assert!(wh.file_type().is_char_device(), "whiteout is a char device");
    assert_eq!(wh.rdev(), 0);
    let keep = fs::symlink_metadata(l2.join(e::KEPT))?;
    let link = fs::symlink_metadata(l2.join(e::HARDLINK))?;
    assert_eq!(keep.ino(), link.ino(), "hard link shares the inode");
    assert_eq!(
        fs::read_link(l2.join(e::SYMLINK))?.to_str(),
        Some(e::SYMLINK_TARGET)
    );
    let secret = fs::symlink_metadata(l2.join(e::ODD_MODE))?;
    assert_eq!(secret.permissions().mode() & 0o7777, 0o640);
    assert_eq!((secret.uid(), secret.gid()), (33, 33));
    let l3 = &dests[2];
    assert_eq!(
        getxattr(&l3.join(e::OPAQUE_DIR), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l3.join(format!("{}/.wh..wh..opq", e::OPAQUE_DIR)).exists());
    assert_eq!(fs::read(l3.join(e::OPAQUE_NEW))?, b"new\n");
    // busybox in layer 1 is executable and its applets are symlinks to it.
    let bb = fs::symlink_metadata(dests[0].join("bin/busybox"))?;
    assert_eq!(bb.permissions().mode() & 0o111, 0o111);
    Ok(())
}

/// A tar whose entries are written with raw names, as a hostile layer would be.
struct RawTar(Vec<u8>);

impl RawTar {
    fn new() -> Self {
        RawTar(Vec::new())
    }
    fn entry(mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }
    fn file(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Regular, "", b"pwned\n")
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0, 1024));
        self.0
    }
}

fn apply_bytes(tar: Vec<u8>, dest: &Path) -> Result<(), berth_snapshotter::ApplyError> {
    let mut r = std::io::Cursor::new(tar);
    apply_layer(&mut r, dest, &ApplyOptions::default()).map(|_| ())
}

fn assert_nothing_outside(outside: &Path) {
    assert!(
        !outside.join("escaped").exists(),
        "a file was written outside the layer"
    );
}

#[test]
fn hostile_entries_are_refused() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    let outside = dir.path().join("outside");
    fs::create_dir(&outside)?;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            RawTar::new().file("../outside/escaped").finish(),
            "`..`",
        ),
        (
            "nested dotdot",
            RawTar::new().file("a/../../outside/escaped").finish(),
            "`..`",
        ),
        (
            "absolute",
            RawTar::new()
                .file(&format!("{}/escaped", outside.display()))
                .finish(),
            "absolute",
        ),
        (
            "symlink then file",
            RawTar::new()
                .entry(
                    "link",
                    tar::EntryType::Symlink,
                    outside.to_str().unwrap_or("/"),
                    b"",
                )
                .file("link/escaped")
                .finish(),
            "symlink",
        ),
        (
            "relative symlink then file",
            RawTar::new()
                .entry("link", tar::EntryType::Symlink, "../outside", b"")
                .file("link/escaped")
                .finish(),
            "symlink",
        ),
        (
            "hard link to outside",
            RawTar::new()
                .entry("escaped", tar::EntryType::Link, "../outside/x", b"")
                .finish(),
            "`..`",
        ),
    ];
    for (what, tar, expect) in cases {
        let dest = dir.path().join(format!("dest-{}", what.replace(' ', "-")));
        fs::create_dir(&dest)?;
        let err = apply_bytes(tar, &dest).expect_err(what);
        let msg = err.to_string();
        assert!(
            msg.contains(expect),
            "{what}: error {msg:?} should mention {expect:?}"
        );
        assert_nothing_outside(&outside);
    }
    // A truncated tar is an error, not a silent partial apply.
    let dest = dir.path().join("truncated");
    fs::create_dir(&dest)?;
    let mut t = RawTar::new().file("ok").finish();
    t.truncate(512 + 3);
    assert!(apply_bytes(t, &dest).is_err(), "truncated entry refused");
    Ok(())
}

#[test]
fn pax_xattrs_and_devices() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1)?;
    h.set_device_minor(3)?;
    h.set_mode(0o666);
    h.set_size(0);
    b.append_data(&mut h, "dev/null", std::io::empty())?;
    b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"hello"[..])])?;
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o4755);
    h.set_mtime(1_000_000);
    h.set_size(2);
    b.append_data(&mut h, "bin/suid", &b"hi"[..])?;
    let bytes = b.into_inner()?;
    let dest = dir.path().join("d");
    fs::create_dir(&dest)?;
    apply_bytes(bytes, &dest)?;
    let null = fs::symlink_metadata(dest.join("dev/null"))?;
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    let suid = fs::symlink_metadata(dest.join("bin/suid"))?;
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(suid.mtime(), 1_000_000);
    assert_eq!(
        getxattr(&dest.join("bin/suid"), "user.berth").as_deref(),
        Some(&b"hello"[..])
    );
    Ok(())
}
