//! The layers every service wears, and serving with graceful shutdown.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::caller;
use crate::error::ApiError;
pub use crate::listener::{ConnectionLimits, serve, serve_ops};
use crate::ops;
use crate::telemetry::{MakeRequestUuid, REQUEST_ID};

/// The largest request body accepted anywhere (API.md: 413 above 1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Wraps a service's routes with a problem+json 404 and the common layers.
pub fn wrap(service: &'static str, routes: Router, checks: Vec<ops::ReadyCheck>) -> Router {
    layers(service, routes.fallback(not_found), checks)
}

/// Adds ops routes, request ids, tracing, metrics and the body limit (the gateway, whose
/// fallback is the proxy, calls this directly).
pub fn layers(service: &'static str, routes: Router, checks: Vec<ops::ReadyCheck>) -> Router {
    // Install the recorder now: metrics recorded before it exists are lost.
    ops::prometheus();
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(service, caller::scope))
        .layer(axum::middleware::from_fn_with_state(service, ops::track))
        .merge(ops::router(checks))
        .layer(axum::middleware::from_fn(scope_request_id))
        .layer(
            TraceLayer::new_for_http().make_span_with(move |req: &Request<_>| {
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("request", service, request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Makes the request id visible to service calls made while serving this request.
async fn scope_request_id(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match req.headers().get(REQUEST_ID).cloned() {
        Some(id) => {
            crate::client::REQUEST_ID_SCOPE
                .scope(id, next.run(req))
                .await
        }
        None => next.run(req).await,
    }
}

pub async fn not_found() -> Response {
    ApiError::not_found("no such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
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

/// Default timeout for calls between services.
pub const SERVICE_CALL_TIMEOUT: Duration = Duration::from_secs(5);
