//! A reply under construction, turned into a hyper response at the boundary.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::ApiError;

/// Response bodies: whole for now, streamed later (logs, events, pulls).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Status, headers and a body.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Reply {
    pub fn text(body: &str) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: vec![(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    pub fn json(value: &serde_json::Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(value.to_string()),
        }
    }

    pub fn error(err: &ApiError) -> Reply {
        Reply {
            status: err.status(),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(err.body()),
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

    pub fn into_response(self) -> Response<Body> {
        let mut response =
            Response::new(Full::new(self.body).map_err(|never| match never {}).boxed());
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
