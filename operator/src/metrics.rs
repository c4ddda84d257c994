//! Prometheus metrics of the operator and its HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const RECONCILES: &str = "souk_operator_reconciles_total";
pub const FAILURES: &str = "souk_operator_reconcile_failures_total";
pub const DURATION: &str = "souk_operator_reconcile_duration_seconds";
pub const LEADER: &str = "souk_operator_leader";

pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(DURATION.into()),
            &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .install_recorder()?;
    metrics::describe_counter!(RECONCILES, "Reconciles of Shops, by result");
    metrics::describe_counter!(FAILURES, "Failed reconciles of Shops, by error kind");
    metrics::describe_histogram!(DURATION, "Time spent reconciling one Shop");
    metrics::describe_gauge!(LEADER, "1 while this replica holds the leader lease");
    Ok(handle)
}

pub fn reconciled(ok: bool, took: Duration) {
    counter!(RECONCILES, "result" => if ok { "success" } else { "error" }).increment(1);
    histogram!(DURATION).record(took.as_secs_f64());
}

pub fn failed(kind: &'static str) {
    counter!(FAILURES, "error" => kind).increment(1);
}

pub fn leader(is_leader: bool) {
    gauge!(LEADER).set(if is_leader { 1.0 } else { 0.0 });
}

#[derive(Clone)]
struct Web {
    handle: PrometheusHandle,
    ready: Arc<AtomicBool>,
}

/// Serves until the process ends. `ready` turns true once the controller runs (as leader or
/// as a standby that is waiting for the lease: both are healthy replicas).
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    ready: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(w): State<Web>| async move { w.handle.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(w): State<Web>| async move {
                if w.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .with_state(Web { handle, ready });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
