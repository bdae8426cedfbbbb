//! The shim's ttrpc server: a thread per connection reads a request frame, answers it
//! and writes the response frame.
//!
//! The ttrpc crate's synchronous server handed every request from a reader thread to a
//! pool of workers and every response to a writer thread, three thread switches per
//! call; a health check (four calls every interval) paid for them in every shim. Here
//! a request is answered on the thread that read it, except a method that blocks until
//! something happens (`Wait`): that one gets a thread of its own, so a client that
//! multiplexes calls on one connection (containerd does) keeps being answered while it
//! waits. Responses are written whole under a per-connection lock.

use std::io::BufReader;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::ttrpc::proto::{Codec, ResponseInit};
use containerd_shim_protos::ttrpc::{self, Code, Request, Response};

use crate::frame;

/// A connection's thread answers the requests it reads (a Create runs the runtime).
const CONNECTION_STACK: usize = 1024 * 1024;
/// A blocking call's thread only waits and writes its answer.
const BLOCKING_STACK: usize = 128 * 1024;

/// What the server serves.
pub struct Dispatch {
    /// The response to a request (an OK status with its payload, or an error status).
    pub answer: Box<dyn Fn(&Request) -> Response + Send + Sync>,
    /// Methods that may block indefinitely, each served on a thread of its own.
    pub blocking: &'static [&'static str],
    /// Answers a blocking call without a thread where it can: given the request and
    /// where its answer goes, it keeps `reply` for whoever sees the awaited event (or
    /// calls it now) and returns None; it hands `reply` back for a call it does not
    /// serve so, which then goes to a thread of its own.
    pub deferred: Option<Defer>,
}

/// See [`Dispatch::deferred`].
pub type Defer = Box<dyn Fn(&Request, Reply) -> Option<Reply> + Send + Sync>;

/// Sends the answer of one call on its connection (from any thread, once).
pub type Reply = Box<dyn FnOnce(Response) + Send>;

/// Accepts connections on `listener` and serves each on its own thread, for ever.
pub fn serve(listener: UnixListener, dispatch: Arc<Dispatch>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let d = Arc::clone(&dispatch);
                let spawned = std::thread::Builder::new()
                    .name("ttrpc-conn".into())
                    .stack_size(CONNECTION_STACK)
                    .spawn(move || serve_connection(stream, &d));
                if let Err(e) = spawned {
                    tracing::warn!("no thread for a new ttrpc connection: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors or memory: do not spin on it.
                tracing::warn!("accepting a ttrpc connection: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Serves one connection until the peer closes it or a write fails.
pub fn serve_connection(stream: UnixStream, dispatch: &Arc<Dispatch>) {
    let writer = match stream.try_clone() {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => {
            tracing::warn!("ttrpc connection: {e}");
            return;
        }
    };
    let mut reader = BufReader::with_capacity(4096, stream);
    loop {
        let header = match frame::read_header(&mut reader) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("ttrpc connection: {e}");
                return;
            }
        };
        if header.length as usize > frame::LENGTH_MAX {
            if frame::skip_body(&mut reader, header.length).is_err() {
                return;
            }
            let status = ttrpc::get_status(
                Code::INVALID_ARGUMENT,
                format!(
                    "message length {} exceed maximum message size of {}",
                    header.length,
                    frame::LENGTH_MAX
                ),
            );
            if respond(&writer, header.stream_id, Response::init_status(status)).is_err() {
                return;
            }
            continue;
        }
        let Ok(body) = frame::read_body(&mut reader, header.length) else {
            return;
        };
        if header.kind != frame::REQUEST {
            continue;
        }
        let request = match Request::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                let status = ttrpc::get_status(Code::INVALID_ARGUMENT, e.to_string());
                if respond(&writer, header.stream_id, Response::init_status(status)).is_err() {
                    return;
                }
                continue;
            }
        };
        let id = header.stream_id;
        if dispatch.blocking.contains(&request.method.as_str()) {
            if let Some(defer) = &dispatch.deferred {
                let w = Arc::clone(&writer);
                let reply: Reply = Box::new(move |response| {
                    let _ = respond(&w, id, response);
                });
                if defer(&request, reply).is_none() {
                    continue;
                }
            }
            let (d, w) = (Arc::clone(dispatch), Arc::clone(&writer));
            let spawned = blocking_pool().run(Box::new(move || {
                let _ = respond(&w, id, (d.answer)(&request));
            }));
            if let Err(e) = spawned {
                let status = ttrpc::get_status(
                    Code::RESOURCE_EXHAUSTED,
                    format!("no thread for the call: {e}"),
                );
                if respond(&writer, id, Response::init_status(status)).is_err() {
                    return;
                }
            }
            continue;
        }
        if respond(&writer, id, (dispatch.answer)(&request)).is_err() {
            return;
        }
    }
}

/// A blocking call, answered on a thread of the pool.
type Job = Box<dyn FnOnce() + Send>;

/// How long a blocking call's thread waits for the next one before it ends.
const BLOCKING_IDLE: Duration = Duration::from_secs(30);

/// Threads for blocking calls: a thread that has answered its call waits a while for
/// the next one instead of ending, so a client that waits for an exec every second
/// (a health check) does not make and end a thread each time.
struct BlockingPool {
    state: Mutex<PoolState>,
    wake: std::sync::Condvar,
}

struct PoolState {
    jobs: std::collections::VecDeque<Job>,
    /// Threads waiting for a job; the queue never holds more jobs than this.
    idle: usize,
}

fn blocking_pool() -> &'static BlockingPool {
    static POOL: std::sync::OnceLock<BlockingPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| BlockingPool {
        state: Mutex::new(PoolState {
            jobs: std::collections::VecDeque::new(),
            idle: 0,
        }),
        wake: std::sync::Condvar::new(),
    })
}

impl BlockingPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `job` on an idle thread, or on a new one.
    fn run(&'static self, job: Job) -> std::io::Result<()> {
        {
            let mut st = self.lock();
            if st.idle > st.jobs.len() {
                st.jobs.push_back(job);
                self.wake.notify_one();
                return Ok(());
            }
        }
        std::thread::Builder::new()
            .name("ttrpc-wait".into())
            .stack_size(BLOCKING_STACK)
            .spawn(move || self.work(job))
            .map(drop)
    }

    fn work(&self, first: Job) {
        first();
        let mut st = self.lock();
        st.idle += 1;
        let mut deadline = std::time::Instant::now() + BLOCKING_IDLE;
        loop {
            // A queued job is taken before a timeout is believed: a job is never left
            // for a thread that has gone.
            if let Some(job) = st.jobs.pop_front() {
                st.idle -= 1;
                drop(st);
                job();
                st = self.lock();
                st.idle += 1;
                deadline = std::time::Instant::now() + BLOCKING_IDLE;
                continue;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                st.idle -= 1;
                return;
            }
            st = self
                .wake
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Writes `response` as the answer on stream `id`.
fn respond(writer: &Mutex<UnixStream>, id: u32, response: Response) -> std::io::Result<()> {
    let body = match response.encode() {
        Ok(b) if b.len() <= frame::LENGTH_MAX => b,
        Ok(b) => too_large(b.len())?,
        Err(e) => Response::init_status(ttrpc::get_status(
            Code::UNKNOWN,
            format!("encoding the response: {e}"),
        ))
        .encode()
        .map_err(std::io::Error::other)?,
    };
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    let out = frame::write_frame(&mut *w, id, frame::RESPONSE, &body);
    if out.is_err() {
        // Wake the connection's reader too: the connection is done.
        let _ = w.shutdown(std::net::Shutdown::Both);
    }
    out
}

/// The error answer to a response over ttrpc's limit, as the crate's server answers.
fn too_large(len: usize) -> std::io::Result<Vec<u8>> {
    Response::init_status(ttrpc::get_status(
        Code::INVALID_ARGUMENT,
        format!(
            "response payload {len} bytes exceeds safe limit {} bytes (after transform overhead)",
            frame::LENGTH_MAX
        ),
    ))
    .encode()
    .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::mpsc;

    use containerd_shim_protos::ttrpc::proto::RequestInit;

    use super::*;

    fn request(method: &str, payload: &[u8]) -> Vec<u8> {
        let mut r = Request::init_request("svc".into(), method.into(), 0, Vec::new());
        RequestInit::set_payload(&mut r, payload.to_vec());
        r.encode().unwrap()
    }

    fn read_response(s: &mut UnixStream) -> (u32, Response) {
        let h = frame::read_header(s).unwrap().unwrap();
        assert_eq!(h.kind, frame::RESPONSE);
        let body = frame::read_body(s, h.length).unwrap();
        (h.stream_id, Response::decode(&body).unwrap())
    }

    /// Echoes the payload; "Wait" blocks until the test releases it.
    fn start(release: mpsc::Receiver<()>) -> UnixStream {
        let release = Mutex::new(release);
        let dispatch = Arc::new(Dispatch {
            answer: Box::new(move |req| {
                if req.method == "Wait" {
                    let _ = release.lock().unwrap().recv();
                }
                if req.method == "Fail" {
                    return Response::init_status(ttrpc::get_status(Code::NOT_FOUND, "nope"));
                }
                let mut r = Response::init_status(ttrpc::get_status(Code::OK, ""));
                ResponseInit::set_payload(&mut r, req.payload.clone());
                r
            }),
            blocking: &["Wait"],
            deferred: None,
        });
        let (client, server) = UnixStream::pair().unwrap();
        std::thread::spawn(move || serve_connection(server, &dispatch));
        client
    }

    #[test]
    fn answers_in_order_and_a_blocked_call_does_not_hold_up_the_others() {
        let (tx, rx) = mpsc::channel();
        let mut c = start(rx);
        frame::write_frame(&mut c, 1, frame::REQUEST, &request("Wait", b"w")).unwrap();
        frame::write_frame(&mut c, 3, frame::REQUEST, &request("Echo", b"a")).unwrap();
        frame::write_frame(&mut c, 5, frame::REQUEST, &request("Fail", b"")).unwrap();
        let (id, r) = read_response(&mut c);
        assert_eq!((id, r.payload.as_slice()), (3, &b"a"[..]));
        let (id, r) = read_response(&mut c);
        assert_eq!(id, 5);
        let status = ResponseInit::non_ok(&r).unwrap();
        assert_eq!(
            (status.code(), status.message.as_str()),
            (Code::NOT_FOUND, "nope")
        );
        tx.send(()).unwrap();
        let (id, r) = read_response(&mut c);
        assert_eq!((id, r.payload.as_slice()), (1, &b"w"[..]));
    }

    #[test]
    fn a_deferred_call_is_answered_when_its_reply_is_called_and_others_go_on() {
        type Kept = Arc<Mutex<Option<Reply>>>;
        let kept: Kept = Arc::default();
        let keep = Arc::clone(&kept);
        let dispatch = Arc::new(Dispatch {
            answer: Box::new(|req| {
                let mut r = Response::init_status(ttrpc::get_status(Code::OK, ""));
                ResponseInit::set_payload(&mut r, req.payload.clone());
                r
            }),
            blocking: &["Wait"],
            // "later" is kept; anything else is handed back to the threaded path.
            deferred: Some(Box::new(move |req, reply| {
                if req.payload != b"later" {
                    return Some(reply);
                }
                *keep.lock().unwrap() = Some(reply);
                None
            })),
        });
        let (mut c, server) = UnixStream::pair().unwrap();
        std::thread::spawn(move || serve_connection(server, &dispatch));
        frame::write_frame(&mut c, 1, frame::REQUEST, &request("Wait", b"later")).unwrap();
        frame::write_frame(&mut c, 3, frame::REQUEST, &request("Wait", b"now")).unwrap();
        frame::write_frame(&mut c, 5, frame::REQUEST, &request("Echo", b"e")).unwrap();
        let mut got = [read_response(&mut c), read_response(&mut c)];
        got.sort_by_key(|(id, _)| *id);
        assert_eq!((got[0].0, got[0].1.payload.as_slice()), (3, &b"now"[..]));
        assert_eq!((got[1].0, got[1].1.payload.as_slice()), (5, &b"e"[..]));
        let reply = kept
            .lock()
            .unwrap()
            .take()
            .expect("the deferred call's reply");
        let mut r = Response::init_status(ttrpc::get_status(Code::OK, ""));
        ResponseInit::set_payload(&mut r, b"done".to_vec());
        reply(r);
        let (id, r) = read_response(&mut c);
        assert_eq!((id, r.payload.as_slice()), (1, &b"done"[..]));
    }

    #[test]
    fn bad_frames_get_invalid_argument_and_the_connection_goes_on() {
        let (_tx, rx) = mpsc::channel();
        let mut c = start(rx);
        // Not a Request.
        frame::write_frame(&mut c, 1, frame::REQUEST, &[0xff, 0xff, 0xff]).unwrap();
        let (id, r) = read_response(&mut c);
        assert_eq!(id, 1);
        assert_eq!(
            ResponseInit::non_ok(&r).unwrap().code(),
            Code::INVALID_ARGUMENT
        );
        // Over the limit: the body is skipped.
        let len = frame::LENGTH_MAX as u32 + 1;
        let mut head = len.to_be_bytes().to_vec();
        head.extend_from_slice(&3u32.to_be_bytes());
        head.extend_from_slice(&[frame::REQUEST, 0]);
        c.write_all(&head).unwrap();
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            std::io::copy(&mut std::io::repeat(0).take(u64::from(len)), &mut w).unwrap();
        });
        let (id, r) = read_response(&mut c);
        writer.join().unwrap();
        assert_eq!(id, 3);
        let status = ResponseInit::non_ok(&r).unwrap();
        assert_eq!(status.code(), Code::INVALID_ARGUMENT);
        assert!(
            status.message.contains("exceed maximum"),
            "{}",
            status.message
        );
        frame::write_frame(&mut c, 5, frame::REQUEST, &request("Echo", b"ok")).unwrap();
        let (id, r) = read_response(&mut c);
        assert_eq!((id, r.payload.as_slice()), (5, &b"ok"[..]));
    }

    #[test]
    fn the_blocking_pool_runs_every_job_and_a_blocked_one_holds_up_no_other() {
        let pool = blocking_pool();
        let (release, blocked) = mpsc::channel::<()>();
        let (done, finished) = mpsc::channel::<u32>();
        let d = done.clone();
        pool.run(Box::new(move || {
            let _ = blocked.recv();
            let _ = d.send(0);
        }))
        .unwrap();
        // Jobs after it, some while threads are idle, some while none is.
        for i in 1..=20u32 {
            let d = done.clone();
            pool.run(Box::new(move || {
                let _ = d.send(i);
            }))
            .unwrap();
            if i % 5 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut got: Vec<u32> = (0..20)
            .map(|_| finished.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
        release.send(()).unwrap();
        assert_eq!(finished.recv_timeout(Duration::from_secs(5)).unwrap(), 0);
        // Threads that answered wait for the next job instead of ending.
        std::thread::sleep(Duration::from_millis(20));
        assert!(pool.lock().idle >= 1);
    }
}
