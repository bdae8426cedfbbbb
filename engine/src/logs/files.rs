//! A container's log as files: the one the shim writes and the ones rotation left
//! (`<path>.1` the newest, plain or gzipped, as [`berth_shim::logtarget::rotated`]
//! names them). [`read_all`] reads them in order; a [`Follower`] goes on reading what
//! is written next and keeps going across a rotation.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_shim::logtarget::rotated;

use super::cri_log::{parse_record, Assembler, Entry, LogFormat, LogReadError, Record};

/// How often [`read_all`] starts over when a rotation moved the files while it
/// opened them.
const OPEN_ATTEMPTS: usize = 5;

/// Bytes read from the current file in one go.
const CHUNK: u64 = 4 << 20;

/// The rotated files of `path` that exist, oldest first, each opened (plain before
/// gzipped, as a compression in progress removes the plain one last).
fn open_rotated(path: &Path) -> std::io::Result<Vec<(PathBuf, File, bool)>> {
    let mut files = Vec::new();
    for n in 1.. {
        let mut found = None;
        for gz in [false, true] {
            let name = rotated(path, n, gz);
            match File::open(&name) {
                Ok(f) => {
                    found = Some((name, f, gz));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        match found {
            Some(f) => files.push(f),
            None => break,
        }
    }
    files.reverse();
    Ok(files)
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Reads the whole log at `path`: its rotated files oldest first, then the current
/// file up to its last complete record. Returns the complete lines and a follower
/// that reads on from there (its [`Follower::finish`] gives a last unfinished line).
pub fn read_all(path: &Path, format: LogFormat) -> Result<(Vec<Entry>, Follower), LogReadError> {
    let mut attempt = 0;
    let (current, older) = loop {
        attempt += 1;
        let current = match File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let older = open_rotated(path)?;
        let ino = current
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        // The current file is still the one opened: no rotation came in between.
        if ino == inode(path) || attempt >= OPEN_ATTEMPTS {
            break (current, older);
        }
    };
    let mut follower = Follower::new(path, format);
    let mut entries = Vec::new();
    for (name, mut file, gz) in older {
        let mut bytes = Vec::new();
        let read = if gz {
            flate2::read::GzDecoder::new(file).read_to_end(&mut bytes)
        } else {
            file.read_to_end(&mut bytes)
        };
        read.map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", name.display())))?;
        for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            // A line cut by a crash or a full disk is skipped, not fatal.
            if let Ok(record) = parse_record(format, raw) {
                entries.extend(follower.lines.push(record));
            }
        }
    }
    if let Some(mut file) = current {
        follower.ino = Some(file.metadata()?.ino());
        let mut records = Vec::new();
        follower.drain(&mut file, &mut records)?;
        entries.extend(records.into_iter().filter_map(|r| follower.lines.push(r)));
    }
    Ok((entries, follower))
}

/// Reads a log's new records as they are written, across rotations: when the path
/// names a new file, what is left of the old one (now `<path>.1`) is read first. It
/// holds no descriptor between reads: a follower whose client went away costs nothing.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    format: LogFormat,
    /// The inode of the file read so far; `None` before the first.
    ino: Option<u64>,
    pos: u64,
    /// Bytes of a record not yet complete.
    carry: Vec<u8>,
    lines: Assembler,
}

impl Follower {
    fn new(path: &Path, format: LogFormat) -> Follower {
        Follower {
            path: path.to_path_buf(),
            format,
            ino: None,
            pos: 0,
            carry: Vec::new(),
            lines: Assembler::default(),
        }
    }

    /// A follower of what is written from now on.
    pub fn at_end(path: &Path, format: LogFormat) -> Follower {
        let mut f = Follower::new(path, format);
        if let Ok(m) = std::fs::metadata(path) {
            f.ino = Some(m.ino());
            f.pos = m.len();
        }
        f
    }

    /// A follower from the start of the current file (rotated files not included).
    pub fn from_start(path: &Path, format: LogFormat) -> Follower {
        Follower::new(path, format)
    }

    /// Reads `file` from the position to its end; complete records go to `out`.
    fn drain(&mut self, file: &mut File, out: &mut Vec<Record>) -> std::io::Result<()> {
        let len = file.metadata()?.len();
        if len < self.pos {
            // Truncated in place: start over, a cut record is gone.
            self.pos = 0;
            self.carry.clear();
        }
        loop {
            file.seek(SeekFrom::Start(self.pos))?;
            let n = file.by_ref().take(CHUNK).read_to_end(&mut self.carry)?;
            self.pos += n as u64;
            if let Some(end) = self.carry.iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = self.carry.drain(..=end).collect();
                for raw in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    if let Ok(record) = parse_record(self.format, raw) {
                        out.push(record);
                    }
                }
            }
            if (n as u64) < CHUNK {
                return Ok(());
            }
        }
    }

    /// The records written since the last call.
    pub fn read_records(&mut self) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let ino = file.metadata()?.ino();
        if let Some(old) = self.ino.filter(|old| *old != ino) {
            // Rotated: the writer is done with the old file; what it wrote there
            // since the last read is read first, when it is still `<path>.1`.
            if let Ok(mut previous) = File::open(rotated(&self.path, 1, false)) {
                if previous.metadata().map(|m| m.ino()).ok() == Some(old) {
                    self.drain(&mut previous, &mut out)?;
                }
            }
            self.pos = 0;
            self.carry.clear();
        }
        self.ino = Some(ino);
        self.drain(&mut file, &mut out)?;
        Ok(out)
    }

    /// The lines completed since the last call.
    pub fn read_entries(&mut self) -> std::io::Result<Vec<Entry>> {
        let records = self.read_records()?;
        Ok(records
            .into_iter()
            .filter_map(|r| self.lines.push(r))
            .collect())
    }

    /// The lines left unfinished, for a container that stopped mid-line.
    pub fn finish(self) -> Vec<Entry> {
        self.lines.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn json(n: usize) -> String {
        format!("{{\"log\":\"line {n}\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:{:02}Z\"}}\n", n % 60)
    }

    fn texts(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.line).trim_end().to_string())
            .collect()
    }

    fn gzip(path: &Path, text: &str) {
        let mut enc = flate2::write::GzEncoder::new(
            File::create(path).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
    }

    #[test]
    fn rotated_files_are_read_oldest_first_gzipped_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        gzip(&rotated(&path, 2, true), &(json(0) + &json(1)));
        // A compression under way: the plain file is still there and read first.
        std::fs::write(rotated(&path, 1, false), json(2) + &json(3)).unwrap();
        gzip(&rotated(&path, 1, true), "garbage");
        // The current file ends with half a record being written.
        std::fs::write(&path, json(4) + "{\"log\":\"li").unwrap();
        let (entries, mut follower) = read_all(&path, LogFormat::JsonFile).unwrap();
        assert_eq!(
            texts(&entries),
            ["line 0", "line 1", "line 2", "line 3", "line 4"]
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"ne 5\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:05Z\"}\n")
            .unwrap();
        assert_eq!(texts(&follower.read_entries().unwrap()), ["line 5"]);
        assert!(follower.read_entries().unwrap().is_empty());
    }

    #[test]
    fn a_follower_goes_on_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        std::fs::write(&path, json(0)).unwrap();
        let mut follower = Follower::at_end(&path, LogFormat::JsonFile);
        // Written to the old file just before it was rotated, then the new file.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(json(1).as_bytes()).unwrap();
        std::fs::rename(&path, rotated(&path, 1, false)).unwrap();
        std::fs::write(&path, json(2) + &json(3)).unwrap();
        assert_eq!(
            texts(&follower.read_entries().unwrap()),
            ["line 1", "line 2", "line 3"]
        );
        // Replaced by a shorter file (max-file 1): read from its start.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, json(4)).unwrap();
        assert_eq!(texts(&follower.read_entries().unwrap()), ["line 4"]);
    }

    #[test]
    fn a_missing_log_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let (entries, mut follower) = read_all(&path, LogFormat::Cri).unwrap();
        assert!(entries.is_empty());
        std::fs::write(&path, "2026-01-01T00:00:00Z stdout F late\n").unwrap();
        assert_eq!(texts(&follower.read_entries().unwrap()), ["late"]);
    }
}
