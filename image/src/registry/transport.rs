//! Sending registry requests: endpoints (mirrors, plain HTTP where configured), auth
//! (bearer tokens fetched for a scope and cached; basic), retries with backoff.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use super::auth::{self, Challenge, Credentials};
use super::config::RegistryConfig;
use super::error::RegistryError;

const ATTEMPTS: u32 = 4;

/// One place to send a registry's requests: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host[:port]` or `http://host[:port]`.
    pub base: String,
    /// The registry this serves (`docker.io`, `127.0.0.1:5000`): whose credentials apply.
    pub registry: String,
    pub mirror: bool,
}

pub(super) struct Transport {
    http: reqwest::Client,
    config: RegistryConfig,
    /// (endpoint base, scope) → (bearer token, expiry).
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Endpoints that asked for basic auth.
    basic: Mutex<HashSet<String>>,
}

impl Transport {
    pub(super) fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            // Never send registry traffic through a proxy taken from the environment:
            // the configured endpoints are the only places requests go.
            .no_proxy()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
        for host in config.hosts.values() {
            for path in &host.ca_certs {
                let pem = std::fs::read(path).map_err(|e| RegistryError::CaCert {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    RegistryError::CaCert {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    }
                })?;
                if certs.is_empty() {
                    return Err(RegistryError::CaCert {
                        path: path.display().to_string(),
                        detail: "no PEM certificate in the file".into(),
                    });
                }
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
        }
        Ok(Transport {
            http: builder.build().map_err(RegistryError::Client)?,
            config,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(HashSet::new()),
        })
    }

    /// The registry itself.
    pub(super) fn upstream(&self, registry: &str) -> Endpoint {
        let host = self.config.host(registry);
        let api = if registry == crate::reference::DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if host.insecure { "http" } else { "https" };
        Endpoint {
            base: format!("{scheme}://{api}"),
            registry: registry.to_string(),
            mirror: false,
        }
    }

    /// Mirrors in order, then the registry unless fallback is disabled.
    pub(super) fn pull_endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let host = self.config.host(registry);
        let mut out: Vec<Endpoint> = host
            .mirrors
            .iter()
            .map(|m| {
                let m = m.trim_end_matches('/');
                let base = if m.starts_with("http://") || m.starts_with("https://") {
                    m.to_string()
                } else {
                    format!("https://{m}")
                };
                Endpoint {
                    base,
                    registry: registry.to_string(),
                    mirror: true,
                }
            })
            .collect();
        if out.is_empty() || host.mirror_fallback {
            out.push(self.upstream(registry));
        }
        out
    }

    fn credentials(&self, registry: &str) -> Option<Credentials> {
        let host = self.config.host(registry);
        if let (Some(u), Some(p)) = (host.username, host.password) {
            return Some(Credentials {
                username: u,
                password: p,
            });
        }
        self.config
            .docker_config
            .as_deref()
            .and_then(|p| auth::docker_config_credentials(p, registry))
    }

    fn cached_auth(&self, ep: &Endpoint, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((tok, exp)) = tokens.get(&(ep.base.clone(), scope.to_string())) {
            if *exp > Instant::now() {
                return Some(format!("Bearer {tok}"));
            }
        }
        drop(tokens);
        let basic = self.basic.lock().unwrap_or_else(|p| p.into_inner());
        if basic.contains(&ep.base) {
            return self.credentials(&ep.registry).map(|c| c.basic_header());
        }
        None
    }

    /// Sends a request, authenticating on a 401 challenge and retrying connection
    /// failures, 5xx and 429 with backoff. The caller checks the final status.
    pub(super) async fn send(
        &self,
        ep: &Endpoint,
        scope: &str,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response, RegistryError> {
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(a) = self.cached_auth(ep, scope) {
                if let Ok(v) = HeaderValue::from_str(&a) {
                    req = req.header(AUTHORIZATION, v);
                }
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tracing::debug!(url, error = %e, attempt, "registry request failed, retrying");
                    backoff(attempt, None).await;
                    continue;
                }
                Err(e) if e.is_connect() || e.is_timeout() => {
                    return Err(RegistryError::Connect {
                        url: url.to_string(),
                        source: e,
                    })
                }
                Err(e) => {
                    return Err(RegistryError::Http {
                        url: url.to_string(),
                        source: e,
                    })
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                match challenge {
                    Some(Challenge::Basic) => {
                        if self.credentials(&ep.registry).is_none() {
                            return Ok(resp);
                        }
                        self.basic
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(ep.base.clone());
                    }
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        self.fetch_token(ep, scope, &realm, service.as_deref())
                            .await?;
                    }
                    None => return Ok(resp),
                }
                continue;
            }
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt < ATTEMPTS
            {
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<u64>().ok());
                tracing::debug!(url, %status, attempt, "registry answered with a retryable status");
                backoff(attempt, retry_after).await;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn fetch_token(
        &self,
        ep: &Endpoint,
        scope: &str,
        realm: &str,
        service: Option<&str>,
    ) -> Result<(), RegistryError> {
        let err = |detail: String| RegistryError::Token {
            registry: ep.registry.clone(),
            realm: realm.to_string(),
            detail,
        };
        let mut url = reqwest::Url::parse(realm).map_err(|e| err(format!("bad realm URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err("realm is not an http(s) URL".into()));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let mut req = self.http.get(url);
        if let Some(c) = self.credentials(&ep.registry) {
            req = req.header(AUTHORIZATION, c.basic_header());
        }
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| err(e.to_string()))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: ep.registry.clone(),
                detail: format!(": token server refused the credentials ({status})"),
            });
        }
        if !status.is_success() {
            return Err(err(format!("status {status}")));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| err(format!("bad token response: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| err("response has no token".into()))?;
        // Tokens default to 60 s; renew a little early.
        let ttl = t.expires_in.unwrap_or(60).max(10) - 5;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (ep.base.clone(), scope.to_string()),
                (token, Instant::now() + Duration::from_secs(ttl)),
            );
        Ok(())
    }
}

fn retryable(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

async fn backoff(attempt: u32, retry_after: Option<u64>) {
    let ms = match retry_after {
        Some(s) => (s * 1000).min(5000),
        None => 100u64 << (attempt - 1).min(5),
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
