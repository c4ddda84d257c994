//! Forwarding a public request to the service that owns it.

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Full;
use souk_common::caller::{IDENTITY_HEADERS, ProofTarget};
use souk_common::ops::RouteLabel;
use souk_common::server::MAX_BODY_BYTES;
use souk_common::{ApiError, Caller};

use crate::AppState;
use crate::routes::{self, Access, Timeout};
use crate::{client_addr, ratelimit};

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
    let (mut parts, body) = req.into_parts();
    let client = peer.map(|peer| {
        client_addr::client_addr(&parts.headers, peer.ip(), &state.config.trusted_proxies)
    });
    let client_ip = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let caller = authenticate(state, &parts.headers).await?;
    // Limit before routing, so probing for endpoints costs the prober too.
    let limit_key = match (&caller, client) {
        (Some(Caller::User { id, .. }), _) => format!("user:{id}"),
        (_, Some(ip)) => ratelimit::address_key(ip),
        (_, None) => "ip:unknown".to_owned(),
    };
    state
        .limiter
        .check(&limit_key)
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
    if let Ok(ip) = HeaderValue::from_str(&client_ip) {
        headers.insert("x-forwarded-for", ip);
    }
    let base = state.config.upstreams.base(route.service);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = Uri::try_from(format!("{base}{path_and_query}"))
        .map_err(|_| ApiError::bad_request("invalid request target"))?;
    if let Some(caller) = &caller {
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
    // down refuses while kube-proxy still routes some connections to it.
    let retry = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.headers.clone(),
    );
    let upstream = hyper::Request::from_parts(parts, Full::new(body.clone()));
    let service = route.service.name();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut sent = tokio::time::timeout_at(deadline, state.http.request(upstream)).await;
    if matches!(&sent, Ok(Err(e)) if e.is_connect()) {
        let (method, uri, headers) = retry;
        let mut again = hyper::Request::new(Full::new(body));
        *again.method_mut() = method;
        *again.uri_mut() = uri;
        *again.headers_mut() = headers;
        *again.version_mut() = axum::http::Version::HTTP_11;
        sent = tokio::time::timeout_at(deadline, state.http.request(again)).await;
    }
    let res = match sent {
        Err(_) => {
            tracing::warn!(service, "upstream timed out");
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("the {service} service did not answer in time"),
            ));
        }
        Ok(Err(e)) if e.is_connect() => {
            tracing::warn!(service, error = %e, "upstream unreachable");
            return Err(ApiError::unavailable(format!(
                "the {service} service is unavailable, try again shortly"
            )));
        }
        Ok(Err(e)) => {
            tracing::warn!(service, error = %e, "upstream failed");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!("the {service} service failed to answer"),
            ));
        }
        Ok(Ok(res)) => res,
    };
    let (mut parts, body) = res.into_parts();
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    parts
        .extensions
        .insert(RouteLabel(route.service.metrics_route()));
    Ok(Response::from_parts(parts, Body::new(body)))
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
            let mut e = ApiError::unavailable(
                "your account cannot be checked right now, try again shortly",
            );
            e.retry_after_secs = Some(5);
            e
        })?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    Ok(Some(Caller::User {
        id: claims.sub,
        role,
    }))
}
