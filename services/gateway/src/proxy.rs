//! Forwarding a public request to the service that owns it.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use souk_common::caller::{IDENTITY_HEADERS, ProofTarget};
use souk_common::ops::RouteLabel;
use souk_common::server::MAX_BODY_BYTES;
use souk_common::{ApiError, Caller};
use souk_contract::ErrorCode;

use crate::AppState;
use crate::catalog_cache::{self, Entry, Lookup};
use crate::routes::{self, Access, Route, Timeout};
use crate::{client_addr, ratelimit};
use souk_contract::Service;

/// Connection-level headers that must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

#[tracing::instrument(skip_all)]
pub async fn forward(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    req: Request,
) -> Response {
    match forward_inner(&state, peer.map(|p| p.0.0), req).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn forward_inner(
    state: &AppState,
    peer: Option<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let client = peer.map(|peer| {
        client_addr::client_addr(&parts.headers, peer.ip(), &state.config.trusted_proxies)
    });
    let caller = authenticate(state, &parts.headers).await?;
    // Limit before routing, so probing for endpoints costs the prober too.
    let limit_key = match (&caller, client) {
        (Some(Caller::User { id, .. }), _) => ratelimit::ClientKey::User(*id),
        (_, Some(ip)) => ratelimit::address_key(ip),
        (_, None) => ratelimit::ClientKey::Unknown,
    };
    state
        .limiter
        .check(limit_key)
        .map_err(|wait| ApiError::too_many_requests(wait, "too many requests"))?;
    let route = routes::resolve(&parts.method, parts.uri.path())
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    if caller.is_none() && route.access == Access::User {
        return Err(ApiError::unauthorized(
            "send a valid access token: Authorization: Bearer <token>",
        ));
    }

    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        > Some(MAX_BODY_BYTES)
    {
        return Err(ApiError::payload_too_large());
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large())?;

    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if route.service == Service::Product
        && state.catalog_cache.enabled()
        && let Some(key) = catalog_cache::key(&parts.method, &parts.headers, path_and_query)
    {
        return cached_read(state, route, key, parts, body, client).await;
    }
    // Writes that may change the catalog (stock included: orders reserve and release it)
    // empty this replica's cache once answered, so their client reads them back at once.
    let changes_catalog = !parts.method.is_safe()
        && matches!(
            route.service,
            Service::Product | Service::Order | Service::Payment
        );
    let res = upstream(state, route, parts, body, caller.as_ref(), client).await;
    if changes_catalog {
        // Also after an error: a write may have committed before its answer was lost.
        state.catalog_cache.forget_all();
    }
    Ok(relay(route, res?))
}

/// An anonymous catalog read: from memory, or fetched once for every concurrent request of
/// the same key (see `catalog_cache`).
async fn cached_read(
    state: &AppState,
    route: Route,
    key: String,
    mut parts: Parts,
    body: Bytes,
    client: Option<IpAddr>,
) -> Result<Response, ApiError> {
    let cache = &state.catalog_cache;
    let flight = match cache.lookup(&key, Instant::now()) {
        Lookup::Hit(entry) => return Ok(labelled(route, entry.respond(&parts.headers, "hit"))),
        Lookup::Wait(fetching) => match fetching.await {
            Ok(Some(entry)) => return Ok(labelled(route, entry.respond(&parts.headers, "hit"))),
            // The fetch gave nothing to share (an error, say): ask for this one alone.
            _ => {
                let res = upstream(state, route, parts, body, None, client).await?;
                return Ok(relay(route, res));
            }
        },
        Lookup::Lead(flight) => flight,
    };
    // The stored answer serves every later request, so it is fetched unconditionally; the
    // gateway answers this request's `If-None-Match` itself.
    let mut conditional = HeaderMap::new();
    for value in parts.headers.get_all(header::IF_NONE_MATCH) {
        conditional.append(header::IF_NONE_MATCH, value.clone());
    }
    parts.headers.remove(header::IF_NONE_MATCH);
    parts.headers.remove(header::IF_MODIFIED_SINCE);
    let sent_at = Instant::now();
    let res = upstream(state, route, parts, body, None, client).await?;
    let small = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|len| len <= catalog_cache::MAX_BODY_BYTES);
    if res.status() != StatusCode::OK || !small {
        flight.finish(None, Instant::now());
        return Ok(relay(route, res));
    }
    let (mut head, incoming) = res.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let read = tokio::time::timeout(state.config.request_timeout, incoming.collect()).await;
    let Ok(Ok(collected)) = read else {
        tracing::warn!(service = "product", "upstream body not read");
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::BadGateway,
            "the product service failed to answer",
        ));
    };
    let bytes = collected.to_bytes();
    let entry = Entry::storable(
        head.status,
        &head.headers,
        bytes.clone(),
        sent_at,
        cache.ttl(),
    );
    match flight.finish(entry, Instant::now()) {
        Some(entry) => Ok(labelled(route, entry.respond(&conditional, "miss"))),
        None => Ok(labelled(
            route,
            Response::from_parts(head, Body::from(bytes)),
        )),
    }
}

/// Sends the request to the service that owns it (again once if the connection was refused),
/// with this span's trace context in place of any the client sent (with traces off, the
/// client's `traceparent`, if any, goes on as it came).
#[tracing::instrument(skip_all, fields(otel.kind = "client", to = route.service.name()))]
async fn upstream(
    state: &AppState,
    route: Route,
    mut parts: Parts,
    body: Bytes,
    caller: Option<&Caller>,
    client: Option<IpAddr>,
) -> Result<hyper::Response<Incoming>, ApiError> {
    let headers = &mut parts.headers;
    for name in HOP_BY_HOP
        .iter()
        .chain(&[header::AUTHORIZATION, header::HOST])
    {
        headers.remove(name);
    }
    for name in IDENTITY_HEADERS {
        headers.remove(name);
    }
    let client_ip = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if let Ok(ip) = HeaderValue::from_str(&client_ip) {
        headers.insert("x-forwarded-for", ip);
    }
    souk_common::telemetry::inject_trace(headers);
    let base = state
        .config
        .upstreams
        .base(route.service)
        .ok_or_else(|| ApiError::internal("a route names the gateway itself"))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = Uri::try_from(format!("{base}{path_and_query}"))
        .map_err(|_| ApiError::bad_request("invalid request target"))?;
    if let Some(caller) = caller {
        let target = ProofTarget {
            service: route.service.name(),
            method: &parts.method,
            path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            body: &body,
        };
        state
            .internal
            .sign_into(caller, &target, &mut parts.headers);
    }
    parts.version = axum::http::Version::HTTP_11;

    let timeout = match route.timeout {
        Timeout::Default => state.config.request_timeout,
        Timeout::Payments => state.config.payments_timeout,
    };
    // A refused connection sent nothing, so any method may go again: a pod that is shutting
    // down refuses while kube-proxy still routes some connections to it. A safe method (GET,
    // HEAD) also goes again when the connection broke after it was sent: a kept-alive
    // connection to a pod that is closing it can break under a request, and reading twice
    // changes nothing. A write is never sent twice: it may have been carried out.
    let safe = parts.method.is_safe();
    let retry = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.headers.clone(),
    );
    let upstream = hyper::Request::from_parts(parts, Full::new(body.clone()));
    let service = route.service.name();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut sent = tokio::time::timeout_at(deadline, state.http.request(upstream)).await;
    if matches!(&sent, Ok(Err(e)) if e.is_connect() || safe) {
        let (method, uri, headers) = retry;
        let mut again = hyper::Request::new(Full::new(body));
        *again.method_mut() = method;
        *again.uri_mut() = uri;
        *again.headers_mut() = headers;
        *again.version_mut() = axum::http::Version::HTTP_11;
        sent = tokio::time::timeout_at(deadline, state.http.request(again)).await;
    }
    match sent {
        Err(_) => {
            tracing::warn!(service, "upstream timed out");
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::UpstreamTimeout,
                format!("the {service} service did not answer in time"),
            ))
        }
        Ok(Err(e)) if e.is_connect() => {
            tracing::warn!(service, error = %e, "upstream unreachable");
            Err(ApiError::unavailable(format!(
                "the {service} service is unavailable, try again shortly"
            )))
        }
        Ok(Err(e)) => {
            tracing::warn!(service, error = %e, "upstream failed");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::BadGateway,
                format!("the {service} service failed to answer"),
            ))
        }
        Ok(Ok(res)) => Ok(res),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The upstream answer as the client's, streamed.
fn relay(route: Route, res: hyper::Response<Incoming>) -> Response {
    let (mut parts, body) = res.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    labelled(route, Response::from_parts(parts, Body::new(body)))
}

/// Marks the answer with the route label of the service it came from, for the metrics.
fn labelled(route: Route, mut res: Response) -> Response {
    res.extensions_mut()
        .insert(RouteLabel(routes::metrics_route(route.service)));
    res
}

/// The verified caller: `None` without a token, 401 with a bad one.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be: Bearer <token>")
        })?;
    let claims = state.keys.verify(token).await.map_err(|e| match e {
        crate::keys::VerifyError::KeysUnavailable => {
            ApiError::unavailable("tokens cannot be verified right now, try again shortly")
        }
        crate::keys::VerifyError::Invalid(reason) => {
            tracing::debug!(%reason, "token rejected");
            ApiError::unauthorized("the access token is invalid or expired")
        }
    })?;
    let role = state
        .sessions
        .current_role(&claims)
        .await
        .map_err(|_| {
            ApiError::unavailable("your account cannot be checked right now, try again shortly")
                .with_retry_after(5)
        })?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    Ok(Some(Caller::User {
        id: claims.sub,
        role,
    }))
}
