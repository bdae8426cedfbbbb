//! Threads writing the small files of an unpacking (berthd's `cp` into a container,
//! the CLI's `cp` out of one), handed over with their data by the one thread that
//! reads the tar.
//!
//! Creating a file is where unpacking spends its time (the filesystem's inode
//! allocation, not the data), and it overlaps well across threads, but only across
//! directories: a creation holds its directory's inode lock, so writers sharing a
//! directory wait on each other (the kernel spins on that lock). Each directory's
//! files therefore go to one writer, in the tar's order, through that writer's own
//! queue; a byte budget bounds the data held in memory.
//!
//! The reading thread asks [`Writers::pending`] before an entry that could change
//! what a handed-over name means (a link, a removal, the same name again) and
//! [`Writers::drain`]s first, so the tar's order is kept where it matters. Writers are
//! spawned by the thread that calls [`Writers::start`]: they share its mount
//! namespace and its umask, and all are joined when the pool goes.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A file handed to the writers.
pub trait WriteJob: Send + 'static {
    /// Its path: the parent picks the writer, the whole is what
    /// [`Writers::pending`] looks for.
    fn path(&self) -> &Path;
    /// The data it holds in memory, in bytes.
    fn bytes(&self) -> usize;
}

/// How many writers, how far the reading thread may run ahead.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub threads: usize,
    /// Files queued per writer, at most.
    pub queue: usize,
    /// Data handed over and not written yet, at most (a file larger than what is left
    /// waits for the writers, unless none is in flight).
    pub budget: usize,
}

struct State<E> {
    in_flight: usize,
    bytes: usize,
    /// The first failure of a writer.
    error: Option<E>,
}

type Shared<E> = Arc<(Mutex<State<E>>, Condvar)>;
type WriteFn<J, E> = Arc<dyn Fn(&J) -> Result<(), E> + Send + Sync>;

pub struct Writers<J: WriteJob, E: Send + 'static> {
    /// One queue per writer thread.
    queues: Vec<SyncSender<J>>,
    state: Shared<E>,
    threads: Vec<JoinHandle<()>>,
    /// Paths handed over since the last drain.
    names: HashSet<PathBuf>,
    write: WriteFn<J, E>,
    budget: usize,
    /// The error for a pool whose threads are gone (a writer panicked).
    gone: fn(&'static str) -> E,
}

impl<J: WriteJob, E: Send + 'static> Writers<J, E> {
    /// Starts `limits.threads` writers named `<name>-<i>`, each writing its jobs with
    /// `write`. With no thread started, [`Writers::submit`] writes on the caller's.
    pub fn start(
        name: &str,
        limits: Limits,
        write: impl Fn(&J) -> Result<(), E> + Send + Sync + 'static,
        gone: fn(&'static str) -> E,
    ) -> Writers<J, E> {
        let write: WriteFn<J, E> = Arc::new(write);
        let state: Shared<E> = Arc::new((
            Mutex::new(State {
                in_flight: 0,
                bytes: 0,
                error: None,
            }),
            Condvar::new(),
        ));
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for i in 0..limits.threads {
            let (tx, rx) = std::sync::mpsc::sync_channel::<J>(limits.queue);
            let (state, write) = (Arc::clone(&state), Arc::clone(&write));
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    for job in rx {
                        let r = write(&job);
                        let (m, cv) = &*state;
                        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
                        s.in_flight -= 1;
                        s.bytes -= job.bytes();
                        if let Err(e) = r {
                            s.error.get_or_insert(e);
                        }
                        cv.notify_all();
                    }
                });
            if let Ok(t) = spawned {
                queues.push(tx);
                threads.push(t);
            }
        }
        Writers {
            queues,
            state,
            threads,
            names: HashSet::new(),
            write,
            budget: limits.budget,
            gone,
        }
    }

    /// Whether a file at `path` was handed over since the last drain.
    pub fn pending(&self, path: &Path) -> bool {
        self.names.contains(path)
    }

    /// Hands a file to the writer of its directory (waiting while the budget is
    /// spent); the first error of a writer, if one failed meanwhile.
    pub fn submit(&mut self, job: J) -> Result<(), E> {
        if self.queues.is_empty() {
            return (self.write)(&job);
        }
        {
            let (m, cv) = &*self.state;
            let mut s = m.lock().map_err(|_| (self.gone)("a file writer failed"))?;
            while s.in_flight > 0 && s.bytes + job.bytes() > self.budget && s.error.is_none() {
                s = cv
                    .wait(s)
                    .map_err(|_| (self.gone)("a file writer failed"))?;
            }
            if let Some(e) = s.error.take() {
                return Err(e);
            }
            s.in_flight += 1;
            s.bytes += job.bytes();
        }
        self.names.insert(job.path().to_path_buf());
        let i = writer_of(job.path(), self.queues.len());
        self.queues[i]
            .send(job)
            .map_err(|_| (self.gone)("the file writers are gone"))
    }

    /// Waits until every file handed over is written; the first writer's error.
    pub fn drain(&mut self) -> Result<(), E> {
        self.names.clear();
        let (m, cv) = &*self.state;
        let mut s = m.lock().map_err(|_| (self.gone)("a file writer failed"))?;
        while s.in_flight > 0 {
            s = cv
                .wait(s)
                .map_err(|_| (self.gone)("a file writer failed"))?;
        }
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Drains, then ends and joins the writers.
    pub fn finish(mut self) -> Result<(), E> {
        let r = self.drain();
        self.stop();
        r
    }

    fn stop(&mut self) {
        // Closing the queues ends each writer once its queue is empty.
        self.queues.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl<J: WriteJob, E: Send + 'static> Drop for Writers<J, E> {
    /// No writer outlives the pool (nor the view or directory it writes into).
    fn drop(&mut self) {
        self.stop();
    }
}

/// The writer of `path`'s directory, among `n`.
fn writer_of(path: &Path, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.parent().unwrap_or(Path::new("")).hash(&mut h);
    (h.finish() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Job {
        path: PathBuf,
        data: Vec<u8>,
    }

    impl WriteJob for Job {
        fn path(&self) -> &Path {
            &self.path
        }
        fn bytes(&self) -> usize {
            self.data.len()
        }
    }

    fn job(path: &str, len: usize) -> Job {
        Job {
            path: PathBuf::from(path),
            data: vec![0; len],
        }
    }

    const LIMITS: Limits = Limits {
        threads: 4,
        queue: 64,
        budget: 1000,
    };

    #[test]
    fn a_directorys_files_are_written_by_one_writer_in_order_and_held_to_the_budget() {
        type Log = Arc<Mutex<Vec<(String, String, usize)>>>;
        let log: Log = Arc::default();
        let held = Arc::new(Mutex::new((0usize, 0usize)));
        let (l, h) = (Arc::clone(&log), Arc::clone(&held));
        let mut w = Writers::start(
            "test",
            LIMITS,
            move |j: &Job| -> Result<(), String> {
                {
                    let mut h = h.lock().unwrap();
                    h.0 += j.data.len();
                    h.1 = h.1.max(h.0);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                let me = std::thread::current().name().unwrap_or("").to_string();
                let dir = j.path.parent().unwrap().display().to_string();
                let n = j
                    .path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .parse()
                    .unwrap();
                l.lock().unwrap().push((dir, me, n));
                h.lock().unwrap().0 -= j.data.len();
                Ok(())
            },
            |m| m.to_string(),
        );
        for n in 0..40 {
            for dir in ["a", "b/c", "d"] {
                let path = format!("{dir}/{n}");
                w.submit(job(&path, 100)).unwrap();
                assert!(w.pending(Path::new(&path)));
            }
        }
        w.drain().unwrap();
        assert!(!w.pending(Path::new("a/0")));
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 120);
        for dir in ["a", "b/c", "d"] {
            let mine: Vec<_> = log.iter().filter(|(d, _, _)| d == dir).collect();
            assert!(mine.iter().all(|(_, t, _)| *t == mine[0].1), "{mine:?}");
            let order: Vec<usize> = mine.iter().map(|(_, _, n)| *n).collect();
            assert_eq!(order, (0..40).collect::<Vec<_>>());
        }
        // Never more than the budget's bytes handed over and not written.
        assert!(
            held.lock().unwrap().1 <= LIMITS.budget,
            "{:?}",
            held.lock().unwrap()
        );
        w.finish().unwrap();
    }

    #[test]
    fn a_writers_error_comes_back_and_the_rest_still_ends() {
        let mut w = Writers::start(
            "test",
            LIMITS,
            |j: &Job| -> Result<(), String> {
                if j.path.ends_with("bad") {
                    return Err(format!("cannot write {}", j.path.display()));
                }
                Ok(())
            },
            |m| m.to_string(),
        );
        w.submit(job("x/ok", 10)).unwrap();
        w.submit(job("x/bad", 10)).unwrap();
        w.submit(job("y/ok", 10)).unwrap();
        assert_eq!(w.drain().unwrap_err(), "cannot write x/bad");
        // Reported once; the pool goes on.
        w.submit(job("z/ok", 10)).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn without_threads_the_caller_writes() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&written);
        let mut w = Writers::start(
            "test",
            Limits {
                threads: 0,
                ..LIMITS
            },
            move |_: &Job| -> Result<(), String> {
                seen.lock().unwrap().push(std::thread::current().id());
                Ok(())
            },
            |m| m.to_string(),
        );
        w.submit(job("a/1", 1)).unwrap();
        assert_eq!(*written.lock().unwrap(), [std::thread::current().id()]);
        w.finish().unwrap();
    }
}
