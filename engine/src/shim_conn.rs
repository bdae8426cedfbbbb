//! berthd's side of ttrpc to a shim: unary calls over plain blocking Unix sockets,
//! and batches of calls (a health check's exec, start and wait) on the async runtime.
//!
//! The ttrpc crate's synchronous client starts two threads per connection and wakes
//! one of them every 10 ms to poll its socket, for as long as the connection lives.
//! berthd keeps a connection per running container blocked in `Wait` and opens one
//! per health check, so that polling was most of an idle berthd's CPU. A unary call
//! needs none of it: write the request frame, read the response frame, on the
//! calling thread. A call that finds every connection busy (one blocked in `Wait`)
//! opens another; idle connections are kept for the next call.
//!
//! Framing is ttrpc's (`berth_shim::frame`, which the shim's server uses too); client
//! stream ids are odd and increase.

use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use berth_shim::frame;
use containerd_shim_protos::ttrpc::proto::{Codec, RequestInit, ResponseInit};
use containerd_shim_protos::ttrpc::{self, Request, Response};

/// The service berth-shim serves.
const SERVICE: &str = "containerd.task.v3.Task";

/// Idle connections kept per shim.
const IDLE_MAX: usize = 2;

/// One connection, used by one call at a time.
struct Conn {
    stream: UnixStream,
    next_stream: u32,
}

/// Connections to one shim's socket.
pub(crate) struct Conns {
    address: String,
    idle: Mutex<Vec<Conn>>,
}

fn socket_err(what: &str, e: impl std::fmt::Display) -> ttrpc::Error {
    ttrpc::Error::Socket(format!("{what}: {e}"))
}

impl Conns {
    /// Connects once, so an unreachable shim is an error here and not at the first call.
    pub(crate) fn connect(address: &str) -> Result<Conns, ttrpc::Error> {
        let conns = Conns {
            address: address.to_string(),
            idle: Mutex::new(Vec::new()),
        };
        let first = conns.open()?;
        conns.idle().push(first);
        Ok(conns)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> Result<Conn, ttrpc::Error> {
        let stream = connect_unix(&self.address)?;
        Ok(Conn {
            stream,
            next_stream: 1,
        })
    }

    /// Calls `method` of the Task service; an error status from the shim is
    /// `Error::RpcStatus`, as from ttrpc's own client.
    pub(crate) fn call<Req, Resp>(&self, method: &str, req: &Req) -> Result<Resp, ttrpc::Error>
    where
        Req: Codec,
        Resp: Codec,
        <Req as Codec>::E: std::fmt::Display,
        <Resp as Codec>::E: std::fmt::Display,
    {
        let body = request_body(method, req)?;
        let mut conn = self.pooled()?;
        let response = conn.round_trip(&body)?;
        let response =
            Response::decode(&response).map_err(|e| socket_err("decoding the response", e))?;
        self.keep(conn);
        Resp::decode(&payload_of(&response)?).map_err(|e| socket_err("decoding the response", e))
    }

    /// Calls written in one go and answered on one connection, on berthd's async
    /// runtime: the shim's server reads them in order and answers each as it is done
    /// (a blocking one, `Wait`, when it is), so a sequence such as exec, start, wait
    /// costs the shim one wake-up to read it instead of one per call, and berthd no
    /// thread of its blocking pool (a health check every second per container paid
    /// two thread hand-offs per check for one). `answered(i, result)` is called as
    /// each answer comes (in the order they come); the answers (payloads, or the
    /// call's error) are returned in the calls' order. An error of the connection
    /// itself fails all. The connection goes back to the pool as a blocking one when
    /// every answer is in.
    pub(crate) async fn call_batch(
        &self,
        calls: &[(&str, Vec<u8>)],
        mut answered: impl FnMut(usize, &Result<Vec<u8>, ttrpc::Error>),
    ) -> Result<Vec<Result<Vec<u8>, ttrpc::Error>>, ttrpc::Error> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = self.pooled()?;
        let (frames, ids) = conn.batch_frames(calls)?;
        let Conn {
            stream,
            next_stream,
        } = conn;
        let nonblocking = |s: &UnixStream, on: bool| {
            s.set_nonblocking(on)
                .map_err(|e| socket_err("setting up the connection", e))
        };
        nonblocking(&stream, true)?;
        let mut stream = tokio::net::UnixStream::from_std(stream)
            .map_err(|e| socket_err("setting up the connection", e))?;
        stream
            .write_all(&frames)
            .await
            .map_err(|e| socket_err("sending to the shim", e))?;
        let mut results = Answers::new(ids);
        let mut buf = Vec::with_capacity(4096);
        while !results.complete() {
            match next_frame(&mut buf)? {
                Some((id, body)) => results.take(id, &body, &mut answered)?,
                None => {
                    let n = stream
                        .read_buf(&mut buf)
                        .await
                        .map_err(|e| socket_err("reading from the shim", e))?;
                    if n == 0 {
                        return Err(socket_err(
                            "reading from the shim",
                            std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                        ));
                    }
                }
            }
        }
        // Every asked answer read, nothing else is due on the connection.
        if buf.is_empty() {
            if let Ok(stream) = stream.into_std() {
                if nonblocking(&stream, false).is_ok() {
                    self.keep(Conn {
                        stream,
                        next_stream,
                    });
                }
            }
        }
        Ok(results.into_results())
    }

    /// An idle connection, or a new one.
    fn pooled(&self) -> Result<Conn, ttrpc::Error> {
        let pooled = self.idle().pop();
        match pooled {
            Some(c) => Ok(c),
            None => self.open(),
        }
    }

    /// Keeps `conn`, in step again (every response read), for the next call.
    fn keep(&self, conn: Conn) {
        let mut idle = self.idle();
        if idle.len() < IDLE_MAX {
            idle.push(conn);
        }
    }
}

/// The answers of a batch, placed in the calls' order as they come.
struct Answers {
    ids: Vec<u32>,
    results: Vec<Option<Result<Vec<u8>, ttrpc::Error>>>,
    left: usize,
}

impl Answers {
    fn new(ids: Vec<u32>) -> Answers {
        let left = ids.len();
        Answers {
            results: (0..left).map(|_| None).collect(),
            ids,
            left,
        }
    }

    fn complete(&self) -> bool {
        self.left == 0
    }

    /// The response frame `body` of stream `id`.
    fn take(
        &mut self,
        id: u32,
        body: &[u8],
        answered: &mut impl FnMut(usize, &Result<Vec<u8>, ttrpc::Error>),
    ) -> Result<(), ttrpc::Error> {
        let Some(i) = self.ids.iter().position(|x| *x == id) else {
            return Err(ttrpc::Error::Others(format!(
                "the shim answered stream {id}, which was not asked"
            )));
        };
        if self.results[i].is_some() {
            return Err(ttrpc::Error::Others(format!(
                "the shim answered stream {id} twice"
            )));
        }
        let result = Response::decode(body)
            .map_err(|e| socket_err("decoding the response", e))
            .and_then(|r| payload_of(&r));
        answered(i, &result);
        self.results[i] = Some(result);
        self.left -= 1;
        Ok(())
    }

    fn into_results(self) -> Vec<Result<Vec<u8>, ttrpc::Error>> {
        self.results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ttrpc::Error::Others("no answer".into()))))
            .collect()
    }
}

/// The first whole response frame in `buf` (taken out of it): its stream id and body;
/// `None` until one has arrived whole.
fn next_frame(buf: &mut Vec<u8>) -> Result<Option<(u32, Vec<u8>)>, ttrpc::Error> {
    let Some(head) = buf.first_chunk::<{ frame::HEADER_LEN }>() else {
        return Ok(None);
    };
    let header = frame::Header::parse(head);
    check_response_header(&header)?;
    let end = frame::HEADER_LEN + header.length as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let body = buf[frame::HEADER_LEN..end].to_vec();
    buf.drain(..end);
    Ok(Some((header.stream_id, body)))
}

/// A response frame's header from the shim: its type, and a length within ttrpc's limit.
fn check_response_header(header: &frame::Header) -> Result<(), ttrpc::Error> {
    if header.kind != frame::RESPONSE || header.length as usize > frame::LENGTH_MAX {
        return Err(ttrpc::Error::Others(format!(
            "the shim answered stream {} with a frame of type {} and {} bytes",
            header.stream_id, header.kind, header.length
        )));
    }
    Ok(())
}

/// A request frame's body: `req` for `method` of the Task service.
pub(crate) fn request_body<Req>(method: &str, req: &Req) -> Result<Vec<u8>, ttrpc::Error>
where
    Req: Codec,
    <Req as Codec>::E: std::fmt::Display,
{
    let payload = req
        .encode()
        .map_err(|e| socket_err("encoding the request", e))?;
    encoded_request(method, payload)
}

fn encoded_request(method: &str, payload: Vec<u8>) -> Result<Vec<u8>, ttrpc::Error> {
    let mut request = <Request as RequestInit>::init_request(
        SERVICE.to_string(),
        method.to_string(),
        0,
        Vec::new(),
    );
    RequestInit::set_payload(&mut request, payload);
    let body = request
        .encode()
        .map_err(|e| socket_err("encoding the request", e))?;
    if body.len() > frame::LENGTH_MAX {
        return Err(ttrpc::Error::Others(format!(
            "{method} request of {} bytes is over ttrpc's limit of {}",
            body.len(),
            frame::LENGTH_MAX
        )));
    }
    Ok(body)
}

/// The payload of an OK response; an error status is `Error::RpcStatus`, as from
/// ttrpc's own client.
fn payload_of(response: &Response) -> Result<Vec<u8>, ttrpc::Error> {
    if let Some(status) = ResponseInit::non_ok(response) {
        return Err(ttrpc::Error::RpcStatus(status));
    }
    Ok(response.payload.clone())
}

impl Conn {
    /// The request frames of `calls`, written in one go, and their stream ids.
    fn batch_frames(
        &mut self,
        calls: &[(&str, Vec<u8>)],
    ) -> Result<(Vec<u8>, Vec<u32>), ttrpc::Error> {
        let mut frames = Vec::new();
        let mut ids = Vec::with_capacity(calls.len());
        for (method, payload) in calls {
            let body = encoded_request(method, payload.clone())?;
            let id = self.next_stream;
            self.next_stream = self.next_stream.wrapping_add(2);
            frame::write_frame(&mut frames, id, frame::REQUEST, &body)
                .map_err(|e| socket_err("framing the request", e))?;
            ids.push(id);
        }
        Ok((frames, ids))
    }

    /// Sends one request frame and reads its response frame.
    fn round_trip(&mut self, body: &[u8]) -> Result<Vec<u8>, ttrpc::Error> {
        let id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        frame::write_frame(&mut self.stream, id, frame::REQUEST, body)
            .map_err(|e| socket_err("sending to the shim", e))?;
        let (answered, body) = self.read_response()?;
        if answered != id {
            return Err(ttrpc::Error::Others(format!(
                "the shim answered stream {answered} when {id} was asked"
            )));
        }
        Ok(body)
    }

    /// The next response frame: its stream id and body.
    fn read_response(&mut self) -> Result<(u32, Vec<u8>), ttrpc::Error> {
        let header = frame::read_header(&mut self.stream)
            .and_then(|h| h.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into()))
            .map_err(|e| socket_err("reading from the shim", e))?;
        check_response_header(&header)?;
        let body = frame::read_body(&mut self.stream, header.length)
            .map_err(|e| socket_err("reading from the shim", e))?;
        Ok((header.stream_id, body))
    }
}

/// `unix:///path` or `unix://@name` (an abstract socket).
fn connect_unix(address: &str) -> Result<UnixStream, ttrpc::Error> {
    let Some(path) = address.strip_prefix("unix://") else {
        return Err(ttrpc::Error::Others(format!(
            "{address:?} is not a unix:// address"
        )));
    };
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| socket_err(address, e))?;
            UnixStream::connect_addr(&addr)
        }
        None => UnixStream::connect(path),
    }
    .map_err(|e| socket_err(address, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::api;
    use std::os::unix::net::UnixListener;
    use std::sync::Arc;

    use berth_shim::server::Dispatch;
    use containerd_shim_protos::ttrpc::Code;

    /// A stand-in shim on a socket, served by the shim's own server: answers each
    /// request with what `answer` makes of it.
    fn serve(
        dir: &std::path::Path,
        answer: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> String {
        let path = dir.join("shim.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let dispatch = Arc::new(Dispatch {
            answer: Box::new(answer),
            blocking: &[],
            deferred: None,
        });
        std::thread::spawn(move || berth_shim::server::serve(listener, dispatch));
        format!("unix://{}", path.display())
    }

    #[test]
    fn calls_carry_service_method_and_payload_and_connections_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let address = serve(dir.path(), |req| {
            assert_eq!(req.service, SERVICE);
            let mut resp = Response::default();
            if req.method == "Start" {
                let start = api::StartRequest::decode(&req.payload).unwrap();
                let out = api::StartResponse {
                    pid: start.id.len() as u32,
                    ..Default::default()
                };
                ResponseInit::set_payload(&mut resp, out.encode().unwrap());
            } else {
                ResponseInit::set_status(
                    &mut resp,
                    ttrpc::get_status(Code::NOT_FOUND, format!("no {}", req.method)),
                );
            }
            resp
        });
        let conns = Conns::connect(&address).unwrap();
        for id in ["a", "abc", "abcdef"] {
            let req = api::StartRequest {
                id: id.to_string(),
                ..Default::default()
            };
            let resp: api::StartResponse = conns.call("Start", &req).unwrap();
            assert_eq!(resp.pid as usize, id.len());
        }
        // Three calls in a row used the one connection made at connect.
        assert_eq!(conns.idle().len(), 1);
        assert_eq!(conns.idle()[0].next_stream, 7);
        let err = conns
            .call::<_, api::StartResponse>("Pause", &api::PauseRequest::default())
            .unwrap_err();
        match err {
            ttrpc::Error::RpcStatus(s) => assert_eq!(s.message, "no Pause"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dead_shim_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix://{}/none.sock", dir.path().display());
        assert!(Conns::connect(&address).is_err());
        assert!(Conns::connect("tcp://127.0.0.1:1").is_err());
        // A shim that closes the connection without answering.
        let path = dir.path().join("closing.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                drop(s);
            }
        });
        let conns = Conns::connect(&format!("unix://{}", path.display())).unwrap();
        let err = conns
            .call::<_, api::StartResponse>("Start", &api::StartRequest::default())
            .unwrap_err();
        assert!(err.to_string().contains("the shim"), "{err}");
    }

    /// A stand-in shim that answers Start with pid 42, Wait with status 3 once the
    /// returned sender says the "process" exited, and anything else NotFound.
    fn exiting_shim(dir: &std::path::Path) -> (Conns, std::sync::mpsc::Sender<()>) {
        let path = dir.join("shim.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (exited, exit) = std::sync::mpsc::channel::<()>();
        let exit = std::sync::Mutex::new(exit);
        let dispatch = Arc::new(Dispatch {
            answer: Box::new(move |req: &Request| {
                let mut resp = Response::default();
                match req.method.as_str() {
                    "Start" => {
                        let out = api::StartResponse {
                            pid: 42,
                            ..Default::default()
                        };
                        ResponseInit::set_payload(&mut resp, out.encode().unwrap());
                    }
                    // Answered once the test lets the "process" exit.
                    "Wait" => {
                        let _ = exit.lock().unwrap().recv();
                        let out = api::WaitResponse {
                            exit_status: 3,
                            ..Default::default()
                        };
                        ResponseInit::set_payload(&mut resp, out.encode().unwrap());
                    }
                    other => ResponseInit::set_status(
                        &mut resp,
                        ttrpc::get_status(Code::NOT_FOUND, format!("no {other}")),
                    ),
                }
                resp
            }),
            blocking: &["Wait"],
            deferred: None,
        });
        std::thread::spawn(move || berth_shim::server::serve(listener, dispatch));
        let conns = Conns::connect(&format!("unix://{}", path.display())).unwrap();
        (conns, exited)
    }

    #[test]
    fn a_batch_is_answered_per_call_in_the_calls_order_with_a_blocking_call_last() {
        let dir = tempfile::tempdir().unwrap();
        let (conns, exited) = exiting_shim(dir.path());
        let calls = [
            ("Wait", api::WaitRequest::default().encode().unwrap()),
            ("Start", api::StartRequest::default().encode().unwrap()),
            ("Pause", api::PauseRequest::default().encode().unwrap()),
        ];
        let mut order = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answers = rt
            .block_on(conns.call_batch(&calls, |i, answer| {
                // The Wait (blocked in the shim) comes last: release it when the
                // others are in.
                if order.len() == 1 {
                    exited.send(()).unwrap();
                }
                order.push((i, answer.is_ok()));
            }))
            .unwrap();
        assert_eq!(order, [(1, true), (2, false), (0, true)]);
        let wait = api::WaitResponse::decode(answers[0].as_ref().unwrap()).unwrap();
        assert_eq!(wait.exit_status, 3);
        let start = api::StartResponse::decode(answers[1].as_ref().unwrap()).unwrap();
        assert_eq!(start.pid, 42);
        match &answers[2] {
            Err(ttrpc::Error::RpcStatus(s)) => assert_eq!(s.message, "no Pause"),
            other => panic!("{other:?}"),
        }
        // The connection is in step again and kept.
        assert_eq!(conns.idle().len(), 1);
        let resp: api::StartResponse = conns.call("Start", &api::StartRequest::default()).unwrap();
        assert_eq!(resp.pid, 42);
    }

    #[test]
    fn a_batch_given_up_midway_leaves_no_connection_out_of_step() {
        let dir = tempfile::tempdir().unwrap();
        let (conns, exited) = exiting_shim(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let calls = [
            ("Start", api::StartRequest::default().encode().unwrap()),
            ("Wait", api::WaitRequest::default().encode().unwrap()),
        ];
        let mut answered = 0;
        let batch = conns.call_batch(&calls, |_, _| answered += 1);
        let outcome = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(200), batch).await
        });
        assert!(outcome.is_err(), "the Wait was answered before the exit");
        assert_eq!(answered, 1);
        // The connection still owing the Wait's answer is not kept: the next call is
        // answered on another one, with its own answer.
        exited.send(()).unwrap();
        assert!(conns.idle().is_empty());
        let resp: api::StartResponse = conns.call("Start", &api::StartRequest::default()).unwrap();
        assert_eq!(resp.pid, 42);
        let answers = rt
            .block_on(conns.call_batch(&calls[..1], |_, _| {}))
            .unwrap();
        let start = api::StartResponse::decode(answers[0].as_ref().unwrap()).unwrap();
        assert_eq!(start.pid, 42);
        assert_eq!(conns.idle().len(), 1);
    }
}
