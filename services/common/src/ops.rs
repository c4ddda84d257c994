//! `/healthz`, `/readyz` and `/metrics`, plus the HTTP metrics middleware.
//!
//! The public port answers `/healthz` and `/readyz` with a bare status (what probes need);
//! `/metrics` and the reason a service is not ready are only served on the ops listener
//! (`listener::serve_ops`), which is never exposed through the gateway or an ingress.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;

/// Checks run by `/readyz`: each answers `Err(reason)` when a dependency is unreachable.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The only paths the ops listener serves.
pub const OPS_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Marks a request that arrived on the ops listener.
#[derive(Clone, Copy, Debug)]
pub struct OpsListener;

/// A response extension naming the route for metrics when axum has no matched path (the
/// gateway's proxy names the service it forwarded to). Must be a fixed, small set.
#[derive(Clone, Copy, Debug)]
pub struct RouteLabel(pub &'static str);

/// A readiness check that pings the database.
pub fn database_check(pool: sqlx::PgPool) -> ReadyCheck {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|e| format!("database: {e}"))
        })
    })
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (one per process, shared by in-process services).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours just stays unused.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn router(checks: Vec<ReadyCheck>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_page))
        .with_state(Arc::new(checks))
}

// Every service answers these; the public API's document describes them as the gateway's,
// the only service the public reaches.

/// A plain-text body that is always `value`, for the document.
macro_rules! text_body {
    ($name:ident, $value:literal) => {
        pub struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(
                    souk_contract::openapi::const_string($value),
                ))
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
text_body!(AliveBody, "ok");
text_body!(ReadyBody, "ready");

/// Liveness
///
/// `ok` while the process serves requests. Not rate-limited.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "getHealthz",
    security(),
    responses((status = 200, description = "Alive.", content_type = "text/plain", body = inline(AliveBody)))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus metrics
///
/// Prometheus text exposition format (request counts and latencies per service, route and
/// status). Served only on the ops listener (`SOUK_OPS_ADDR`), never through the public port,
/// where this path is 404.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    security(),
    responses(
        (status = 200, description = "Metrics.", content_type = "text/plain", body = String),
        (status = 404, response = crate::openapi::NotFound),
    )
)]
pub async fn metrics_page(ops: Option<Extension<OpsListener>>) -> Response {
    match ops {
        Some(_) => prometheus().render().into_response(),
        None => ApiError::not_found("no such endpoint").into_response(),
    }
}

/// Readiness
///
/// 200 `ready` once the gateway knows the token verification keys (the user service has
/// answered), else 503 with `not ready` as plain text (on the ops listener, `SOUK_OPS_ADDR`:
/// the reason). Not rate-limited.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "getReadyz",
    security(),
    responses(
        (status = 200, description = "Ready.", content_type = "text/plain", body = inline(ReadyBody)),
        (status = 503, description = "Not ready; the body says why.", content_type = "text/plain", body = String),
    )
)]
pub async fn ready(
    State(checks): State<Arc<Vec<ReadyCheck>>>,
    ops: Option<Extension<OpsListener>>,
) -> Response {
    for check in checks.iter() {
        if let Err(reason) = check().await {
            tracing::warn!(%reason, "not ready");
            let body = if ops.is_some() {
                reason
            } else {
                "not ready".to_owned()
            };
            return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        }
    }
    "ready".into_response()
}

/// The method as a label: the standard ones, anything else `other` (clients can send any
/// token as a method, and each label value is a new series held in memory forever).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Counts a request and records its latency, per service, method, route template and status
/// (for the request frame, `frame`). Never the raw path: route templates come from the router
/// (`matched`) or the gateway's route table (`RouteLabel`), fixed sets.
pub(crate) fn track(
    service: &'static str,
    method: &'static str,
    matched: Option<&MatchedPath>,
    res: &Response,
    start: Instant,
) {
    let route = match (res.extensions().get::<RouteLabel>(), matched) {
        (Some(label), _) => label.0,
        (None, Some(path)) => path.as_str(),
        (None, None) => "unmatched",
    };
    let series = series(service, route, method, res.status().as_u16());
    series.requests.increment(1);
    series.duration.record(start.elapsed().as_secs_f64());
}

/// One label set's counter and histogram.
#[derive(Clone)]
struct Series {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Series by service, route, method and status. Naming a metric by its labels allocates them
/// and looks them up in the recorder's registry on every call; a request looks its handles up
/// here instead, under a read lock and without allocating. The label sets are bounded (see
/// `track`), so the map is too.
type SeriesMap = HashMap<&'static str, HashMap<Box<str>, Vec<(&'static str, u16, Series)>>>;
static SERIES: LazyLock<RwLock<SeriesMap>> = LazyLock::new(RwLock::default);

fn series(service: &'static str, route: &str, method: &'static str, status: u16) -> Series {
    let find = |map: &SeriesMap| {
        map.get(service)?
            .get(route)?
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
            .map(|(_, _, series)| series.clone())
    };
    if let Some(found) = find(&SERIES.read().unwrap_or_else(PoisonError::into_inner)) {
        return found;
    }
    let mut map = SERIES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = find(&map) {
        return found;
    }
    // A handle made before the recorder exists would count nowhere, and be kept.
    prometheus();
    let labels = [
        ("service", service.to_owned()),
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let created = Series {
        requests: metrics::counter!("http_requests_total", &labels),
        duration: metrics::histogram!("http_request_duration_seconds", &labels),
    };
    map.entry(service)
        .or_default()
        .entry(route.into())
        .or_default()
        .push((method, status, created.clone()));
    created
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request;

    #[test]
    fn a_label_set_is_one_series_however_often_it_is_looked_up() {
        let rendered = || prometheus().render();
        for _ in 0..3 {
            series("ops-test", "/things/{id}", "GET", 200)
                .requests
                .increment(1);
        }
        series("ops-test", "/things/{id}", "GET", 404)
            .requests
            .increment(1);
        let lines: Vec<String> = rendered()
            .lines()
            .filter(|l| l.starts_with("http_requests_total") && l.contains("ops-test"))
            .map(str::to_owned)
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("status=\"200\"") && l.ends_with(" 3")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("status=\"404\"") && l.ends_with(" 1")),
            "{lines:?}"
        );
    }

    #[test]
    fn invented_methods_share_one_label() {
        for m in ["FOO", "BAR1", "X-ANYTHING"] {
            assert_eq!(
                method_label(&Method::from_bytes(m.as_bytes()).unwrap()),
                "other"
            );
        }
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }

    #[tokio::test]
    async fn the_reason_for_not_ready_is_told_only_on_the_ops_listener() {
        use tower::ServiceExt;
        let failing: ReadyCheck =
            Arc::new(|| Box::pin(async { Err("database: connection refused".to_owned()) }));
        let app = router(vec![failing]);
        let ask = |ops: bool| {
            let mut req = Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap();
            if ops {
                req.extensions_mut().insert(OpsListener);
            }
            let app = app.clone();
            async move {
                let res = app.oneshot(req).await.unwrap();
                let status = res.status();
                let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let public = ask(false).await;
        assert_eq!(
            public,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned())
        );
        let ops = ask(true).await;
        assert_eq!(ops.0, StatusCode::SERVICE_UNAVAILABLE);
        assert!(ops.1.contains("connection refused"), "{}", ops.1);
    }
}
