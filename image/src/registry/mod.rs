//! OCI distribution v2 client on `reqwest` (rustls, streaming bodies).
//!
//! Written here rather than on `oci-client` because the pull pipeline needs the raw
//! byte stream of each blob (to hash, store and unpack it in one pass while it arrives),
//! per-registry mirrors with fallback, and retries that we control.

pub mod auth;
pub mod config;
mod error;
mod transport;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};

pub use auth::Credentials;
use berth_snapshotter::Digest;
pub use config::{HostConfig, RegistryConfig};
pub use error::RegistryError;
pub use transport::Endpoint;
use transport::Transport;

use crate::manifest::{Descriptor, MAX_MANIFEST_BYTES};
use crate::reference::Reference;

/// A manifest as fetched.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    pub digest: Digest,
}

/// A registry client shared by every pull and push.
pub struct Client {
    transport: Transport,
}

impl Client {
    /// A client with `config`'s mirrors, CA certificates and credentials.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        Ok(Client {
            transport: Transport::new(config)?,
        })
    }

    /// Checks that the registry answers the v2 API (`GET /v2/`).
    pub async fn ping(&self, registry: &str) -> Result<(), RegistryError> {
        let ep = self.transport.upstream(registry);
        let url = format!("{}/v2/", ep.base);
        let resp = self
            .transport
            .send(&ep, "", Method::GET, &url, HeaderMap::new(), None)
            .await?;
        check(resp, &ep, &url).await.map(|_| ())
    }

    /// Fetches a manifest by tag or digest (verified when asked by digest).
    pub async fn get_manifest(
        &self,
        r: &Reference,
        object: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let scope = pull_scope(r);
        let mut errors = Vec::new();
        let endpoints = self.transport.pull_endpoints(&r.registry);
        let n = endpoints.len();
        for (i, ep) in endpoints.into_iter().enumerate() {
            match self.get_manifest_from(&ep, r, object, &scope).await {
                Ok(m) => return Ok(m),
                Err(e) if ep.mirror && i + 1 < n => {
                    tracing::warn!(mirror = %ep.base, error = %e, "mirror failed, trying next");
                    errors.push(format!("{}: {e}", ep.base));
                }
                Err(e) if ep.mirror => {
                    errors.push(format!("{}: {e}", ep.base));
                    return Err(RegistryError::MirrorsFailed {
                        registry: r.registry.clone(),
                        errors: errors.join("; "),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::MirrorsFailed {
            registry: r.registry.clone(),
            errors: "no endpoint configured".into(),
        })
    }

    async fn get_manifest_from(
        &self,
        ep: &Endpoint,
        r: &Reference,
        object: &str,
        scope: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = format!("{}/v2/{}/manifests/{}", ep.base, r.repository, object);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(crate::manifest::ACCEPT));
        let resp = self
            .transport
            .send(ep, scope, Method::GET, &url, headers, None)
            .await?;
        let what = format!("{}/{}:{}", r.registry, r.repository, object);
        let resp = check(resp, ep, &what).await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
        let digest = Digest::of(&bytes);
        if let Ok(want) = object.parse::<Digest>() {
            if want != digest {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Starts downloading a blob; the response body is streamed by the caller, who must
    /// verify digest and size.
    pub async fn get_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
    ) -> Result<Response, RegistryError> {
        let scope = pull_scope(r);
        let mut errors = Vec::new();
        let endpoints = self.transport.pull_endpoints(&r.registry);
        let n = endpoints.len();
        for (i, ep) in endpoints.into_iter().enumerate() {
            let url = format!("{}/v2/{}/blobs/{}", ep.base, r.repository, desc.digest);
            let what = format!("{}/{}@{}", r.registry, r.repository, desc.digest);
            let res = match self
                .transport
                .send(&ep, &scope, Method::GET, &url, HeaderMap::new(), None)
                .await
            {
                Ok(resp) => check(resp, &ep, &what).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(resp) => {
                    if let Some(len) = content_length(&resp) {
                        if len > desc.size {
                            return Err(RegistryError::TooLarge {
                                what,
                                limit: desc.size,
                            });
                        }
                    }
                    return Ok(resp);
                }
                Err(e) if ep.mirror && i + 1 < n => {
                    tracing::warn!(mirror = %ep.base, error = %e, "mirror failed, trying next");
                    errors.push(format!("{}: {e}", ep.base));
                }
                Err(e) if ep.mirror => {
                    errors.push(format!("{}: {e}", ep.base));
                    return Err(RegistryError::MirrorsFailed {
                        registry: r.registry.clone(),
                        errors: errors.join("; "),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::MirrorsFailed {
            registry: r.registry.clone(),
            errors: "no endpoint configured".into(),
        })
    }

    /// Downloads a small blob (a config) whole, verified.
    pub async fn get_blob_bytes(
        &self,
        r: &Reference,
        desc: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("{}/{}@{}", r.registry, r.repository, desc.digest);
        if desc.size > limit {
            return Err(RegistryError::TooLarge { what, limit });
        }
        let resp = self.get_blob(r, desc).await?;
        let bytes = read_limited(resp, desc.size, &what).await?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest || bytes.len() as u64 != desc.size {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: desc.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Whether the repository already has the blob (`HEAD`).
    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let ep = self.transport.upstream(&r.registry);
        let url = format!("{}/v2/{}/blobs/{}", ep.base, r.repository, digest);
        let resp = self
            .transport
            .send(
                &ep,
                &push_scope(r, None),
                Method::HEAD,
                &url,
                HeaderMap::new(),
                None,
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => check(resp, &ep, &url).await.map(|_| false),
        }
    }

    /// Uploads a blob, mounting it from `from_repo` (same registry) when possible.
    /// Returns true when the blob was mounted instead of uploaded.
    pub async fn upload_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        data: Bytes,
        from_repo: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let ep = self.transport.upstream(&r.registry);
        let scope = push_scope(r, from_repo);
        let what = format!("{}/{}@{}", r.registry, r.repository, digest);
        let url = match from_repo {
            Some(from) => format!(
                "{}/v2/{}/blobs/uploads/?mount={}&from={}",
                ep.base, r.repository, digest, from
            ),
            None => format!("{}/v2/{}/blobs/uploads/", ep.base, r.repository),
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self
            .transport
            .send(&ep, &scope, Method::POST, &url, headers, Some(Bytes::new()))
            .await?;
        if resp.status() == StatusCode::CREATED && from_repo.is_some() {
            return Ok(true);
        }
        let resp = check(resp, &ep, &what).await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                what: what.clone(),
                detail: "upload started without a Location header".into(),
            })?;
        let mut put_url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{}", ep.base, location)
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={digest}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let resp = self
            .transport
            .send(&ep, &scope, Method::PUT, &put_url, headers, Some(data))
            .await?;
        check(resp, &ep, &what).await?;
        Ok(false)
    }

    /// Uploads a manifest under `object` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        r: &Reference,
        object: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        let ep = self.transport.upstream(&r.registry);
        let url = format!("{}/v2/{}/manifests/{}", ep.base, r.repository, object);
        let mut headers = HeaderMap::new();
        let ct = HeaderValue::from_str(media_type).map_err(|_| RegistryError::Protocol {
            what: url.clone(),
            detail: format!("bad media type {media_type:?}"),
        })?;
        headers.insert(CONTENT_TYPE, ct);
        let resp = self
            .transport
            .send(
                &ep,
                &push_scope(r, None),
                Method::PUT,
                &url,
                headers,
                Some(bytes),
            )
            .await?;
        check(
            resp,
            &ep,
            &format!("{}/{}:{}", r.registry, r.repository, object),
        )
        .await
        .map(|_| ())
    }
}

fn pull_scope(r: &Reference) -> String {
    format!("repository:{}:pull", r.repository)
}

fn push_scope(r: &Reference, from: Option<&str>) -> String {
    let mut s = format!("repository:{}:pull,push", r.repository);
    if let Some(f) = from {
        s.push_str(&format!(" repository:{f}:pull"));
    }
    s
}

fn content_length(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn read_limited(resp: Response, limit: u64, what: &str) -> Result<Vec<u8>, RegistryError> {
    if content_length(&resp).is_some_and(|l| l > limit) {
        return Err(RegistryError::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| RegistryError::Http {
            url: what.to_string(),
            source,
        })?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(RegistryError::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Maps a non-success status to the error a user can act on.
async fn check(resp: Response, ep: &Endpoint, what: &str) -> Result<Response, RegistryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = read_limited(resp, 64 * 1024, what)
        .await
        .unwrap_or_default();
    let (code, message) = error_code(&body);
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    let what = what.to_string();
    let registry = ep.registry.clone();
    Err(match status.as_u16() {
        401 => RegistryError::Unauthorized { registry, detail },
        403 => RegistryError::Denied { registry, detail },
        404 => match code.as_str() {
            "MANIFEST_UNKNOWN" => RegistryError::ManifestUnknown { what },
            "BLOB_UNKNOWN" => RegistryError::BlobUnknown { what },
            "NAME_UNKNOWN" => RegistryError::NameUnknown { what, detail },
            _ => RegistryError::NotFound { what, detail },
        },
        429 => RegistryError::TooManyRequests { registry },
        s => RegistryError::Status {
            what,
            status: s,
            detail,
        },
    })
}

fn error_code(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => (e.errors[0].code.clone(), e.errors[0].message.clone()),
        _ => (
            String::new(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string(),
        ),
    }
}
