//! The request frame: what every request of every service goes through before its handler,
//! as one layer. In order: a usable request id (the client's, or a fresh UUID v7), the request's
//! span (continuing the caller's W3C trace), the stated caller's proof material
//! (`caller::received`), the services-only rule for `/internal/` paths, the request id as a
//! task-local for service calls made while serving it, and afterwards the metrics, a log line
//! for a server error and the request id on the answer.
//!
//! One hand-written layer instead of a stack of `from_fn` middlewares and tower-http layers:
//! under axum's `Router::layer` each of those boxed a copy of the route and its future on every
//! request, 15 allocations a request in the gateway (`scripts/gateway-instructions`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::caller::{self, InternalAuth};
use crate::client::REQUEST_ID_SCOPE;
use crate::error::ApiError;
use crate::ops::{self, OPS_PATHS};
use crate::telemetry::{self, REQUEST_ID};

/// The layer; `internal`: keep `/internal/` paths for the services it verifies.
#[derive(Clone)]
pub(crate) struct RequestFrame {
    pub service: &'static str,
    pub internal: Option<InternalAuth>,
}

impl<S> Layer<S> for RequestFrame {
    type Service = Framed<S>;

    fn layer(&self, inner: S) -> Framed<S> {
        Framed {
            inner,
            frame: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Framed<S> {
    inner: S,
    frame: RequestFrame,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Framed<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> BoxFuture {
        let start = Instant::now();
        let id = request_id(&mut req);
        let scoped_id = id.clone();
        let service = self.frame.service;
        // `caller`: the calling service, recorded by `caller::services_only`. `service` tells
        // the services apart in a trace even when they share one process and so one
        // OpenTelemetry resource (`souk up`, tests).
        let span = tracing::info_span!("request", service, request_id = id.to_str().unwrap_or("-"), method = %req.method(), path = %req.uri().path(), caller = tracing::field::Empty, otel.kind = "server");
        // A caller's W3C `traceparent` is accepted, a public client's included (the gateway's
        // callers): it is what W3C Trace Context and OpenTelemetry do, and a trace id only
        // links spans, it grants nothing. What a client's sampled flag costs is bounded by the
        // sampler (OTEL_TRACES_SAMPLER, e.g. traceidratio).
        telemetry::continue_trace(&span, req.headers());
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let tracked = !matched
            .as_ref()
            .is_some_and(|m| OPS_PATHS.contains(&m.as_str()));
        let method = ops::method_label(req.method());

        // Only a request that states a caller has its body read here (for its proof); any
        // other goes to the route at once, without a second copy of the route.
        let next = if req.headers().contains_key(caller::PRINCIPAL) {
            let clone = self.inner.clone();
            Next::Proof(
                std::mem::replace(&mut self.inner, clone),
                self.frame.clone(),
                req,
            )
        } else {
            match self.frame.admit(&req, &span) {
                Ok(()) => Next::Called(span.in_scope(|| self.inner.call(req))),
                Err(refused) => Next::Refused(refused.into_response()),
            }
        };
        let answer = async move {
            let res = match next {
                Next::Called(answer) => answer.await.unwrap_or_else(|e| match e {}),
                Next::Refused(refused) => refused,
                Next::Proof(inner, frame, req) => match caller::received(service, req).await {
                    Err(refused) => refused,
                    Ok(req) => match frame.admit(&req, &tracing::Span::current()) {
                        Err(refused) => refused.into_response(),
                        Ok(()) => inner.oneshot(req).await.unwrap_or_else(|e| match e {}),
                    },
                },
            };
            Ok(after(
                service,
                method,
                tracked,
                matched.as_ref(),
                start,
                &id,
                res,
            ))
        };
        Box::pin(REQUEST_ID_SCOPE.scope(scoped_id, answer.instrument(span)))
    }
}

/// Where a request goes after the frame's first part.
enum Next<S, F> {
    /// To its route, already called.
    Called(F),
    /// Nowhere: the frame answered.
    Refused(Response),
    /// To its route once its body is read for the stated caller's proof (the frame's settings
    /// go along: only this path needs them after the call).
    Proof(S, RequestFrame, Request),
}

impl RequestFrame {
    /// The services-only rule, where this service has internal endpoints.
    fn admit(&self, req: &Request, span: &tracing::Span) -> Result<(), ApiError> {
        match &self.internal {
            Some(auth) => caller::services_only(auth, req, span),
            None => Ok(()),
        }
    }
}

/// Metrics, a server error's log line (what tower-http's `TraceLayer` logged at ERROR), and the
/// request id on the answer.
fn after(
    service: &'static str,
    method: &'static str,
    tracked: bool,
    matched: Option<&MatchedPath>,
    start: Instant,
    id: &HeaderValue,
    mut res: Response,
) -> Response {
    if tracked {
        ops::track(service, method, matched, &res, start);
    }
    let status = res.status();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_ms, "response failed");
    } else {
        tracing::debug!(
            status = status.as_u16(),
            latency_ms,
            "finished processing request"
        );
    }
    res.headers_mut()
        .entry(REQUEST_ID)
        .or_insert_with(|| id.clone());
    res
}

/// The client's request id if it is usable, else a fresh one, set on the request. One that
/// goes into every log line, every service call and the answer must be at most 200 bytes of
/// visible ASCII.
fn request_id(req: &mut Request) -> HeaderValue {
    let usable = |id: &HeaderValue| {
        (1..=200).contains(&id.len()) && id.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b))
    };
    if let Some(id) = req.headers().get(REQUEST_ID).filter(|id| usable(id)) {
        return id.clone();
    }
    let id = telemetry::new_request_id();
    req.headers_mut().insert(REQUEST_ID, id.clone());
    id
}
