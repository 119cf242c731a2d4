//! Prometheus metrics: the process-wide recorder (installed once), and the middleware that counts
//! requests by route template and status and times them.
//!
//! Series:
//! - `pqom_http_requests_total{method, route, status}`
//! - `pqom_http_request_duration_seconds{method, route}` (histogram)
//! - `pqom_submissions_total{channel, outcome, reason}` (from the pipeline)
//! - delivery (from `deliver::engine`): `pqom_delivery_queue_depth` (pending deliveries),
//!   `pqom_outbox_undispatched_events`, `pqom_delivery_latency_seconds{destination}` (histogram,
//!   acceptance to 2xx), `pqom_delivery_attempts_total{destination, result}` (delivered, retry,
//!   dead), `pqom_delivery_failures_total{destination, reason}` (http_4xx, http_5xx, timeout,
//!   connect, transport, build)

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const DURATION: &str = "pqom_http_request_duration_seconds";
const DELIVERY_LATENCY: &str = "pqom_delivery_latency_seconds";

/// The process-wide Prometheus recorder, installed on first use (the `metrics` facade has one
/// global recorder, and tests start many routers in one process). If a host application
/// installed another recorder first, this one is not global: `/metrics` then renders nothing,
/// and a warning says so.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(DURATION.to_owned()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .and_then(|b| {
                    // Acceptance to a receiver's 2xx: milliseconds when all is well, hours when a
                    // receiver was down.
                    b.set_buckets_for_metric(
                        Matcher::Full(DELIVERY_LATENCY.to_owned()),
                        &[
                            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                            300.0, 3600.0, 86400.0,
                        ],
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// Count and time every request by its route template (never the raw path: ids would make
/// the series unbounded).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "pqom_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(DURATION, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}
