//! The CRI server's Prometheus metrics: every unary RPC's latency by method and gRPC
//! code (recorded by the one instrumented layer, `error::instrument`), and pods by
//! state, read from the sandbox records at scrape time.

use std::sync::{LazyLock, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntGaugeVec, Opts};

use crate::sandbox::store::SandboxState;
use crate::{Cri, Inner};

/// `berth_cri_request_duration_seconds{method,code}`. Process-wide, as the CRI socket
/// is: the instrumented layer is a free function every RPC goes through.
static RPC_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        HistogramOpts::new(
            "berth_cri_request_duration_seconds",
            "Time a CRI RPC took, by method (RunPodSandbox, CreateContainer, …) and gRPC code (OK, NotFound, …), in seconds.",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]),
        &["method", "code"],
    )
    .unwrap_or_else(|e| panic!("berth_cri_request_duration_seconds: {e}"))
});

/// Records one RPC's latency.
pub(crate) fn observe_rpc(method: &str, code: tonic::Code, seconds: f64) {
    RPC_LATENCY
        .with_label_values(&[method, code_name(code)])
        .observe(seconds);
}

/// gRPC's names of the codes, as other runtimes' metrics label them.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

impl Cri {
    /// The collectors berthd registers: RPC latency and pods by state.
    pub fn metrics_collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(RPC_LATENCY.clone()),
            Box::new(PodCollector::new(std::sync::Arc::downgrade(&self.inner))),
        ]
    }
}

/// The same collectors with no CRI server behind them (pods are not read): their
/// names, labels and help, for the test that holds the documentation to them.
pub fn describe() -> Vec<Box<dyn Collector>> {
    vec![
        Box::new(RPC_LATENCY.clone()),
        Box::new(PodCollector::new(Weak::new())),
    ]
}

/// Pods by state, read from the sandbox records when Prometheus scrapes.
struct PodCollector {
    inner: Weak<Inner>,
    pods: IntGaugeVec,
}

impl PodCollector {
    fn new(inner: Weak<Inner>) -> Self {
        let pods = IntGaugeVec::new(
            Opts::new(
                "berth_pods",
                "CRI pod sandboxes, by state (ready, notready).",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("berth_pods: {e}"));
        PodCollector { inner, pods }
    }
}

impl Collector for PodCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.pods.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(inner) = self.inner.upgrade() else {
            return Vec::new();
        };
        match inner.sandboxes.list() {
            Ok(records) => {
                let ready = records
                    .iter()
                    .filter(|r| r.state == SandboxState::Ready)
                    .count();
                self.pods.with_label_values(&["ready"]).set(ready as i64);
                self.pods
                    .with_label_values(&["notready"])
                    .set((records.len() - ready) as i64);
                self.pods.collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: listing pod sandboxes");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_latency_is_labelled_by_method_and_grpc_code_name() {
        observe_rpc("Version", tonic::Code::Ok, 0.001);
        observe_rpc("Version", tonic::Code::NotFound, 0.001);
        let ok = RPC_LATENCY.with_label_values(&["Version", "OK"]);
        assert!(ok.get_sample_count() >= 1);
        let missing = RPC_LATENCY.with_label_values(&["Version", "NotFound"]);
        assert!(missing.get_sample_count() >= 1);
    }
}
