//! A Docker API request: the version-stripped path, its query, and the body on demand.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Bodies larger than this are refused where a JSON document is expected.
pub const MAX_JSON_BODY: usize = 4 << 20;

/// One request as handlers see it.
pub struct ApiRequest {
    pub method: Method,
    /// The path without its `/v1.NN` prefix.
    pub path: String,
    /// Query pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    /// The API version the request is served at: the path's `/v1.NN`, else berth's
    /// newest.
    pub version: (u32, u32),
    body: Option<Incoming>,
    /// The connection, once the answer is sent, when the client asked for an upgrade.
    upgrade: Option<OnUpgrade>,
}

impl ApiRequest {
    pub fn new(req: hyper::Request<Incoming>, path: String, version: (u32, u32)) -> ApiRequest {
        let (mut parts, body) = req.into_parts();
        let asks_upgrade = parts.headers.contains_key(hyper::header::UPGRADE);
        let upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .filter(|_| asks_upgrade);
        let query = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        ApiRequest {
            method: parts.method,
            path,
            query,
            headers: parts.headers,
            version,
            body: Some(body),
            upgrade,
        }
    }

    /// Takes the connection's upgrade, present when the client sent `Upgrade:` (the
    /// docker CLI's `Upgrade: tcp` for attach and exec start); `None` if taken.
    pub fn take_upgrade(&mut self) -> Option<OnUpgrade> {
        self.upgrade.take()
    }

    /// The last value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter as Docker reads them: `1`, `true`, `True` are true;
    /// absent, empty, `0` and `false` are false.
    pub fn query_bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.query(name) {
            None | Some("") | Some("0") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) if v == "1" || v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) => Err(ApiError::BadRequest(format!(
                "invalid boolean value {v:?} for query parameter {name:?}"
            ))),
        }
    }

    /// An integer query parameter, `None` when absent or empty.
    pub fn query_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.query(name) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid integer value {v:?} for query parameter {name:?}"
                ))
            }),
        }
    }

    /// Takes the body for streaming (image load, build contexts); `None` if taken.
    pub fn take_body(&mut self) -> Option<Incoming> {
        self.body.take()
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn bytes(&mut self, limit: usize) -> Result<Bytes, ApiError> {
        let Some(mut body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::BadRequest(format!("reading the request body: {e}")))?;
            if let Some(data) = frame.data_ref() {
                if buf.len() + data.len() > limit {
                    return Err(ApiError::BadRequest(format!(
                        "request body larger than {limit} bytes"
                    )));
                }
                buf.extend_from_slice(data);
            }
        }
        Ok(Bytes::from(buf))
    }

    /// Parses the body as JSON; an empty body parses as `null` (so `Option<T>` works).
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let bytes = self.bytes(MAX_JSON_BODY).await?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON in the request body: {e}")))
    }
}
