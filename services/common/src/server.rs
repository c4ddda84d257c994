//! The layers every service wears, and serving with graceful shutdown.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use tokio::net::TcpListener;

use crate::caller;
use crate::error::ApiError;
use crate::frame::RequestFrame;
pub use crate::listener::{ConnectionLimits, serve, serve_ops};
use crate::ops;
use souk_contract::ErrorCode;

/// The largest request body accepted anywhere (API.md: 413 above 1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Wraps a service's routes with its state, a problem+json 404 and the common layers, and keeps
/// its internal endpoints for the services that the state's `InternalAuth` verifies
/// (`caller::services_only`). The service is ready while its database `db` answers.
pub fn wrap<S>(service: &'static str, routes: Router<S>, state: S, db: sqlx::PgPool) -> Router
where
    S: Clone + Send + Sync + 'static,
    caller::InternalAuth: FromRef<S>,
{
    let internal = Some(caller::InternalAuth::from_ref(&state));
    let routes = routes.fallback(not_found).with_state(state);
    framed(service, internal, routes, vec![ops::database_check(db)])
}

/// Adds ops routes, the request frame (request ids, tracing, metrics; see `frame`) and the
/// body limit (the gateway, whose fallback is the proxy and which has no internal endpoints,
/// calls this directly).
pub fn layers(service: &'static str, routes: Router, checks: Vec<ops::ReadyCheck>) -> Router {
    framed(service, None, routes, checks)
}

fn framed(
    service: &'static str,
    internal: Option<caller::InternalAuth>,
    routes: Router,
    checks: Vec<ops::ReadyCheck>,
) -> Router {
    // Install the recorder now: metrics recorded before it exists are lost.
    ops::prometheus();
    // One `Router::layer` call: axum boxes a copy of each route per layer and request.
    let frame = tower::ServiceBuilder::new()
        .layer(RequestFrame { service, internal })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .merge(ops::router(checks))
        .layer(frame)
}

/// `GET /openapi.json` for a service: its part of the public API's document (`part`, the
/// service's `openapi()`, in the shared frame and finished as the whole document is), encoded
/// once, here.
pub fn openapi<S: Clone + Send + Sync + 'static>(
    part: utoipa::openapi::OpenApi,
) -> MethodRouter<S> {
    let mut doc = crate::openapi::base();
    doc.merge(part);
    crate::openapi::finish(&mut doc);
    let document = Bytes::from(crate::openapi::to_json(&doc));
    get(move || {
        let document = document.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], document) }
    })
}

pub async fn not_found() -> Response {
    ApiError::not_found("no such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this method is not allowed here",
    )
    .into_response()
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// For `souk serve` (a pod): resolves at once on SIGINT, and on SIGTERM only after `drain`.
/// Kubernetes sends SIGTERM while it takes the pod out of its Services' endpoints; until every
/// kube-proxy has caught up, new connections still arrive and would be refused. Serving on for
/// `drain` is the preStop sleep that an image without a shell cannot have.
pub async fn termination_signal(drain: std::time::Duration) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                tracing::info!(
                    drain_ms = drain.as_millis() as u64,
                    "SIGTERM: serving on while endpoints drain"
                );
                tokio::time::sleep(drain).await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Default timeout for calls between services.
pub const SERVICE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod request_id_tests {
    use crate::telemetry::REQUEST_ID;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn answered_id(sent: &[u8]) -> String {
        let app = layers(
            "test",
            Router::new().route("/", get(|| async { "ok" })),
            vec![],
        );
        let req = Request::get("/")
            .header(
                REQUEST_ID,
                axum::http::HeaderValue::from_bytes(sent).unwrap(),
            )
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        let id = res.headers().get(REQUEST_ID).expect("a request id");
        String::from_utf8_lossy(id.as_bytes()).into_owned()
    }

    #[tokio::test]
    async fn a_sane_request_id_is_echoed_and_any_other_replaced() {
        assert_eq!(answered_id(b"trace-42/abc").await, "trace-42/abc");
        // Echoed into every log line and every service call: bounded and printable only.
        for sent in [&[b'a'; 201][..], b"", "\u{fc}n\u{ef}".as_bytes(), b"a b"] {
            let id = answered_id(sent).await;
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "answered {id:?}");
        }
    }
}

#[cfg(test)]
mod trace_context_tests {
    use crate::telemetry;
    use axum::body::Body;
    use axum::http::{HeaderMap, Request};
    use axum::routing::get;
    use http_body_util::BodyExt;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Traces on for this test's thread only: an OpenTelemetry layer that samples everything.
    fn traces_on() -> tracing::subscriber::DefaultGuard {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
    }

    /// The `traceparent` a handler would send to another service, given the one it received.
    async fn passed_on(received: Option<&str>) -> String {
        let handler = || async {
            let mut headers = HeaderMap::new();
            telemetry::inject_trace(&mut headers);
            headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let app = layers("test", Router::new().route("/", get(handler)), vec![]);
        let mut req = Request::get("/");
        if let Some(traceparent) = received {
            req = req.header("traceparent", traceparent);
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// version, trace id, parent span id, flags.
    fn fields(traceparent: &str) -> [String; 4] {
        let parts: Vec<String> = traceparent.split('-').map(str::to_owned).collect();
        parts.try_into().unwrap()
    }

    const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[tokio::test]
    async fn a_request_continues_its_callers_trace_and_passes_it_on() {
        let _traces = traces_on();
        let [version, trace, parent, flags] = fields(&passed_on(Some(CALLER)).await);
        assert_eq!(version, "00");
        assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c");
        // The parent of the next call is this service's span, not its caller's.
        assert_ne!(parent, "b7ad6b7169203331");
        assert_eq!(parent.len(), 16);
        assert_eq!(flags, "01");
    }

    #[tokio::test]
    async fn a_request_without_a_traceparent_starts_a_trace() {
        let _traces = traces_on();
        let [_, first, ..] = fields(&passed_on(None).await);
        let [_, second, ..] = fields(&passed_on(None).await);
        assert_eq!(first.len(), 32);
        assert_ne!(first, "0".repeat(32));
        assert_ne!(first, second);
        // An unusable header is no parent: a fresh trace again.
        let [_, third, ..] = fields(&passed_on(Some("00-zz-yy-01")).await);
        assert_ne!(third, "0".repeat(32));
    }

    #[tokio::test]
    async fn with_traces_off_nothing_is_passed_on() {
        assert_eq!(passed_on(Some(CALLER)).await, "");
        assert_eq!(passed_on(None).await, "");
    }
}

#[cfg(test)]
mod internal_endpoint_tests {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use axum::routing::get;
    use tower::ServiceExt;
    use uuid::Uuid;

    use super::*;
    use crate::caller::{Caller, InternalAuth, ProofTarget, Role};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// What a service answers to `GET path` from `caller` (signed with `secret`), routes
    /// declared without any check of their own.
    async fn status(path: &str, caller: Option<Caller>, secret: &str) -> StatusCode {
        let routes = Router::new()
            .route("/internal/things/{id}", get(|| async { "internal" }))
            .route("/api/v1/things", get(|| async { "public" }));
        // Nothing here touches the database: a pool that never connects.
        let db = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let app = wrap("test", routes, InternalAuth::new(SECRET), db);
        let mut req = Request::get(path).body(Body::empty()).unwrap();
        if let Some(caller) = caller {
            let target = ProofTarget {
                service: "test",
                method: &Method::GET,
                path_and_query: path,
                body: b"",
            };
            InternalAuth::new(secret).sign_into(&caller, &target, req.headers_mut());
        }
        app.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn internal_endpoints_answer_services_only() {
        let path = "/internal/things/1";
        let order = || Some(Caller::Service("order".to_owned()));
        let admin = Some(Caller::User {
            id: Uuid::now_v7(),
            role: Role::Admin,
        });
        assert_eq!(status(path, order(), SECRET).await, StatusCode::OK);
        assert_eq!(status(path, admin, SECRET).await, StatusCode::FORBIDDEN);
        assert_eq!(status(path, None, SECRET).await, StatusCode::UNAUTHORIZED);
        let guessed = "a-guessed-secret-a-guessed-secret";
        assert_eq!(
            status(path, order(), guessed).await,
            StatusCode::UNAUTHORIZED
        );
        // Unknown internal paths reveal nothing to anyone else either.
        let unknown = "/internal/nothing";
        assert_eq!(
            status(unknown, None, SECRET).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(unknown, order(), SECRET).await,
            StatusCode::NOT_FOUND
        );
        // Public paths are not concerned.
        assert_eq!(status("/api/v1/things", None, SECRET).await, StatusCode::OK);
    }
}
