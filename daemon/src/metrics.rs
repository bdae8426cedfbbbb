//! Prometheus metrics at `http://<metrics_address>/metrics`: the engine's, the CRI
//! server's, the Docker API's request latency (recorded here) and the process's own.
//! Every metric is documented in `docs/metrics.md`; a test holds the two together.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::core::Collector;
use prometheus::{Encoder, HistogramOpts, HistogramVec, Registry, TextEncoder};
use tokio::net::TcpListener;

/// Errors setting metrics up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics_address {address}: cannot listen: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("registering metrics: {0}")]
    Register(#[from] prometheus::Error),
}

/// What the Docker API records.
pub struct ApiMetrics {
    /// `berth_docker_request_duration_seconds{route,method,status}`.
    pub request_latency: HistogramVec,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        let request_latency = HistogramVec::new(
            HistogramOpts::new(
                "berth_docker_request_duration_seconds",
                "Time the Docker Engine API took to answer a request (to the response head; streams and hijacked connections go on after it), by route template, method and HTTP status, in seconds.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route", "method", "status"],
        )
        .unwrap_or_else(|e| panic!("berth_docker_request_duration_seconds: {e}"));
        ApiMetrics { request_latency }
    }
}

impl ApiMetrics {
    /// Records one answered request; `path` is the path without its version prefix.
    pub fn observe(&self, method: &Method, path: &str, status: StatusCode, seconds: f64) {
        let route = route_template(method, path);
        self.request_latency
            .with_label_values(&[route.as_str(), method_label(method), status.as_str()])
            .observe(seconds);
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// The route a path took, with the ids and names in it replaced by `{id}` and
/// `{name}`; `other` for paths berth does not serve (nothing a client sends becomes a
/// label value).
pub fn route_template(method: &Method, path: &str) -> String {
    const EXACT: &[&str] = &[
        "/_ping",
        "/version",
        "/info",
        "/events",
        "/auth",
        "/containers/create",
        "/containers/json",
        "/containers/prune",
        "/images/create",
        "/images/json",
        "/images/search",
        "/images/load",
        "/images/prune",
        "/images/get",
    ];
    const CONTAINER_ACTIONS: &[&str] = &[
        "json", "start", "stop", "restart", "kill", "wait", "logs", "stats", "update", "top",
        "rename", "pause", "unpause", "attach", "resize", "exec",
    ];
    const EXEC_ACTIONS: &[&str] = &["start", "resize", "json"];
    const IMAGE_ACTIONS: &[&str] = &["json", "history", "get", "tag", "push"];
    if let Some(p) = EXACT.iter().find(|p| **p == path) {
        return p.to_string();
    }
    if let Some(rest) = path.strip_prefix("/containers/") {
        return match rest.split_once('/') {
            None if *method == Method::DELETE && !rest.is_empty() => "/containers/{id}".into(),
            Some((id, action)) if !id.is_empty() && CONTAINER_ACTIONS.contains(&action) => {
                format!("/containers/{{id}}/{action}")
            }
            _ => "other".into(),
        };
    }
    if let Some(rest) = path.strip_prefix("/exec/") {
        return match rest.split_once('/') {
            Some((id, action)) if !id.is_empty() && EXEC_ACTIONS.contains(&action) => {
                format!("/exec/{{id}}/{action}")
            }
            _ => "other".into(),
        };
    }
    if let Some(rest) = path.strip_prefix("/images/") {
        // Image names have slashes: the operation is the last segment.
        if *method == Method::DELETE && !rest.is_empty() {
            return "/images/{name}".into();
        }
        return match rest.rsplit_once('/') {
            Some((name, op)) if !name.is_empty() && IMAGE_ACTIONS.contains(&op) => {
                format!("/images/{{name}}/{op}")
            }
            _ => "other".into(),
        };
    }
    "other".into()
}

/// One registry with every berth metric and the process's own (CPU, memory, fds).
pub fn registry(
    collectors: impl IntoIterator<Item = Box<dyn Collector>>,
) -> Result<Registry, MetricsError> {
    let registry = Registry::new();
    for c in collectors {
        registry.register(c)?;
    }
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(registry)
}

/// Every berth collector of `daemon` and `cri`.
pub fn collectors(daemon: &crate::Daemon, cri: &berth_cri_server::Cri) -> Vec<Box<dyn Collector>> {
    let mut all = berth_engine::metrics::EngineMetrics::collectors(&daemon.engine);
    all.extend(cri.metrics_collectors());
    all.push(Box::new(daemon.api_metrics.request_latency.clone()));
    all
}

/// Binds `address` (an error naming `metrics_address` when it cannot).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind { address, source })
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    registry: Registry,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let registry = Arc::new(registry);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a metrics connection failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let registry = Arc::clone(&registry);
                async move {
                    // The collectors read the stores (SQLite) and /proc: off the
                    // async workers.
                    let reply = tokio::task::spawn_blocking(move || answer(&registry, &req))
                        .await
                        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
                    Ok::<_, Infallible>(reply)
                }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "metrics connection ended with an error");
            }
        });
    }
}

fn answer<B>(registry: &Registry, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n".into());
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        );
    }
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    if let Ok(v) = encoder.format_type().parse() {
        reply.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    reply
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_carry_templates_not_ids() {
        let cases = [
            (
                Method::POST,
                "/containers/abc123/start",
                "/containers/{id}/start",
            ),
            (Method::DELETE, "/containers/abc123", "/containers/{id}"),
            (Method::GET, "/containers/json", "/containers/json"),
            (Method::POST, "/containers/create", "/containers/create"),
            (Method::GET, "/containers/abc/nonsense", "other"),
            (Method::POST, "/exec/e1/start", "/exec/{id}/start"),
            (
                Method::GET,
                "/images/docker.io/library/busybox:latest/json",
                "/images/{name}/json",
            ),
            (Method::DELETE, "/images/busybox", "/images/{name}"),
            (Method::POST, "/images/create", "/images/create"),
            (Method::GET, "/_ping", "/_ping"),
            (Method::GET, "/some/random/path", "other"),
        ];
        for (method, path, want) in cases {
            assert_eq!(route_template(&method, path), want, "{method} {path}");
        }
    }

    /// The rows of the table in docs/metrics.md: (name, type, labels, meaning).
    fn documented() -> Vec<(String, String, String, String)> {
        let doc = include_str!("../../docs/metrics.md");
        doc.lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<String> = l
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect();
                let cell = |i: usize| cells.get(i).cloned().unwrap_or_default();
                (cell(0), cell(1), cell(2), cell(3))
            })
            .collect()
    }

    #[test]
    fn every_metric_is_documented_and_every_documented_metric_exists() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let engine = match berth_engine::Engine::open(berth_engine::EngineConfig {
            root: dir.path().to_path_buf(),
            state: dir.path().join("state"),
            runtimes: crate::config::Config::default().runtime_handlers(),
        }) {
            Ok(e) => Arc::new(e),
            Err(e) => panic!("opening an engine: {e}"),
        };
        let api = ApiMetrics::default();
        let mut all = berth_engine::metrics::EngineMetrics::collectors(&engine);
        all.push(Box::new(api.request_latency.clone()));
        // The CRI's, without opening a CRI server: the same collectors' descriptions.
        all.extend(berth_cri_server::metrics::describe());
        all.push(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let mut registered = Vec::new();
        for c in &all {
            for d in c.desc() {
                let mut labels = d.variable_labels.clone();
                labels.sort();
                registered.push((d.fq_name.clone(), labels.join(", "), d.help.clone()));
            }
        }
        let doc = documented();
        for (name, labels, help) in &registered {
            let row = doc.iter().find(|r| &r.0 == name);
            let Some(row) = row else {
                panic!("{name} is not in docs/metrics.md");
            };
            let mut doc_labels: Vec<&str> = row
                .2
                .split(',')
                .map(|l| l.trim().trim_matches('`'))
                .filter(|l| !l.is_empty() && *l != "—")
                .collect();
            doc_labels.sort();
            assert_eq!(&doc_labels.join(", "), labels, "labels of {name}");
            assert_eq!(&row.3, help, "help of {name}");
        }
        for row in &doc {
            assert!(
                registered.iter().any(|r| r.0 == row.0),
                "docs/metrics.md documents {}, which is not registered",
                row.0
            );
            assert!(
                ["counter", "gauge", "histogram"].contains(&row.1.as_str()),
                "type of {}: {}",
                row.0,
                row.1
            );
        }
    }
}
