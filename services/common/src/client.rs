//! Calls from one service to another: pooled keep-alive connections, a timeout, the caller's
//! proof, the request id and trace context passed on, and problem+json answers turned back
//! into `ApiError`s.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use souk_contract::ErrorCode;

use crate::caller::{Caller, InternalAuth, ProofTarget};
use crate::error::ApiError;

#[derive(Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    base: String,
    auth: InternalAuth,
    /// The calling service's name, used as its principal and in error messages.
    from: &'static str,
    to: &'static str,
}

/// What went wrong calling a sibling, so callers can choose to retry or degrade.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The sibling answered with an error document (4xx or 5xx).
    #[error("{0}")]
    Api(ApiError),
    /// The sibling could not be reached or did not answer in time.
    #[error("{service} unavailable: {cause}")]
    Unavailable {
        service: &'static str,
        cause: String,
    },
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Api(api) if api.status.is_server_error() => {
                ApiError::unavailable(format!("a service behind this one failed: {}", api.detail))
            }
            CallError::Api(api) => api,
            CallError::Unavailable { service, .. } => ApiError::unavailable(format!(
                "the {service} service is unavailable, try again shortly"
            )),
        }
    }
}

/// How long an unused pooled connection is kept: below the servers' keep-alive limit
/// (`ConnectionLimits::header_read_timeout`, 10 s), so a request is never sent on a connection
/// the server is closing at that moment.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One HTTP client per process: its pool keeps connections to siblings alive.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .expect("a plain HTTP client always builds")
}

impl ServiceClient {
    pub fn new(
        http: reqwest::Client,
        base: String,
        auth: InternalAuth,
        from: &'static str,
        to: &'static str,
    ) -> Self {
        Self {
            http,
            base,
            auth,
            from,
            to,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request as this service (or on behalf of `caller`) and decodes a JSON answer.
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        caller: Option<&Caller>,
    ) -> Result<T, CallError> {
        let res = self.send(method, path, body, caller).await?;
        res.json::<T>()
            .await
            .map_err(|e| self.unavailable(format!("undecodable answer: {e}")))
    }

    /// Like `call`, for answers without a body (204).
    pub async fn call_empty<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        caller: Option<&Caller>,
    ) -> Result<(), CallError> {
        self.send(method, path, body, caller).await.map(|_| ())
    }

    #[tracing::instrument(
        name = "call",
        skip_all,
        fields(otel.kind = "client", from = self.from, to = self.to, %method, path = path.split_once('?').map_or(path, |(path, _)| path))
    )]
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        caller: Option<&Caller>,
    ) -> Result<reqwest::Response, CallError> {
        let body = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|e| self.unavailable(format!("unencodable request: {e}")))?,
            None => Vec::new(),
        };
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .build()
            .map_err(|e| self.unavailable(format!("invalid request: {e}")))?;
        // Sign the target exactly as it goes on the wire (the URL parser normalises it).
        let url = req.url();
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut headers = HeaderMap::new();
        let me = Caller::Service(self.from.to_owned());
        let target = ProofTarget {
            service: self.to,
            method: req.method(),
            path_and_query: &path_and_query,
            body: &body,
        };
        self.auth
            .sign_into(caller.unwrap_or(&me), &target, &mut headers);
        crate::telemetry::inject_trace(&mut headers);
        if let Some(id) = current_request_id() {
            headers.insert(crate::telemetry::REQUEST_ID, id);
        }
        if !body.is_empty() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        req.headers_mut().extend(headers);
        *req.body_mut() = (!body.is_empty()).then(|| body.into());
        let res = self
            .http
            .execute(req)
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(CallError::Api(self.problem(res).await))
    }

    async fn problem(&self, res: reqwest::Response) -> ApiError {
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        let code = body
            .get("code")
            .and_then(|c| c.as_str())
            .and_then(ErrorCode::from_wire)
            // A code from a newer sibling that this release does not know.
            .unwrap_or(ErrorCode::UpstreamError);
        let detail = body
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
            .to_owned();
        let mut e = ApiError::new(
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            code,
            detail,
        );
        if let Some(errors) = body
            .get("errors")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
        {
            e.errors = errors;
        }
        e
    }

    fn unavailable(&self, cause: String) -> CallError {
        tracing::warn!(from = self.from, to = self.to, %cause, "service call failed");
        CallError::Unavailable {
            service: self.to,
            cause,
        }
    }
}

tokio::task_local! {
    /// The request id of the request being served, so calls it makes carry it on.
    pub static REQUEST_ID_SCOPE: HeaderValue;
}

fn current_request_id() -> Option<HeaderValue> {
    REQUEST_ID_SCOPE.try_with(|v| v.clone()).ok()
}
