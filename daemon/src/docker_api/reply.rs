//! A reply under construction, turned into a hyper response at the boundary.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::ApiError;

/// Response bodies: whole, or streamed (logs, events, pulls).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Status, headers and a body.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: ReplyBody,
}

enum ReplyBody {
    Whole(Bytes),
    Stream(Body),
}

impl Reply {
    pub fn text(body: &str) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: vec![(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: ReplyBody::Whole(Bytes::copy_from_slice(body.as_bytes())),
        }
    }

    pub fn json(value: &serde_json::Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: ReplyBody::Whole(Bytes::from(value.to_string())),
        }
    }

    /// A reply with no body (`204 No Content`, `304 Not Modified`, …).
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Whole(Bytes::new()),
        }
    }

    /// A streamed body of `content_type` (chunked on the wire). Send chunks through a
    /// channel wrapped in `http_body_util::StreamBody`; the stream ends the reply.
    pub fn stream(content_type: &'static str, body: Body) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body: ReplyBody::Stream(body),
        }
    }

    /// A streamed reply fed through the returned sender; dropping it ends the reply.
    pub fn channel(content_type: &'static str) -> (tokio::sync::mpsc::Sender<Bytes>, Reply) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        (tx, Reply::stream(content_type, ChannelBody(rx).boxed()))
    }

    /// The HTTP status this reply answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Replaces the status (e.g. `201 Created`).
    pub fn with_status(mut self, status: StatusCode) -> Reply {
        self.status = status;
        self
    }

    pub fn error(err: &ApiError) -> Reply {
        Reply {
            status: err.status(),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: ReplyBody::Whole(Bytes::from(err.body())),
        }
    }

    /// Adds a header; `name` must be lowercase (HTTP/1 names are case-insensitive).
    pub fn header(mut self, name: &'static str, value: &'static str) -> Reply {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
        self
    }

    /// Adds a header with a computed value; `name` must be lowercase.
    pub fn header_value(mut self, name: &'static str, value: &str) -> Result<Reply, ApiError> {
        let value = HeaderValue::from_str(value)
            .map_err(|e| ApiError::Internal(format!("header {name}: {e}")))?;
        self.headers.push((HeaderName::from_static(name), value));
        Ok(self)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = match self.body {
            ReplyBody::Whole(bytes) => Full::new(bytes).map_err(|never| match never {}).boxed(),
            ReplyBody::Stream(body) => body,
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::SERVER,
            HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// A body whose chunks arrive through a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}
