//! Calls made straight to a service, as the gateway or a sibling service makes them: the caller
//! in `x-souk-principal` with a proof, keyed by the internal secret, for exactly this request
//! (service, method, path and query, body). The one way tests make them, over HTTP (reqwest) or
//! in-process to a service's router (`tower::ServiceExt::oneshot`).

use axum::http::{self, HeaderMap, Method, header};
use serde_json::Value;
use souk_common::Caller;
use souk_common::InternalAuth;
use souk_common::caller::ProofTarget;

use crate::TEST_INTERNAL_SECRET;

/// Signs requests to services with an internal secret ([`TEST_INTERNAL_SECRET`] by default).
#[derive(Clone)]
pub struct Internal {
    auth: InternalAuth,
}

impl Default for Internal {
    fn default() -> Self {
        Self::new(TEST_INTERNAL_SECRET)
    }
}

/// A request body with its content type.
#[derive(Clone, Debug)]
pub struct Payload {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Payload {
    pub fn json(value: &Value) -> Self {
        Self::raw(
            "application/json",
            serde_json::to_vec(value).expect("a JSON value encodes"),
        )
    }

    /// Any bytes: malformed JSON, another media type.
    pub fn raw(content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            content_type: content_type.to_owned(),
            bytes: bytes.into(),
        }
    }
}

impl Internal {
    /// Signs with `secret`: a service's own in-process, a guessed one to see it refused.
    pub fn new(secret: &str) -> Self {
        Self {
            auth: InternalAuth::new(secret),
        }
    }

    /// `caller` and its proof for `service` receiving `method path_and_query` with `body`.
    pub fn headers(
        &self,
        caller: &Caller,
        service: &str,
        method: &Method,
        path_and_query: &str,
        body: &[u8],
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let target = ProofTarget {
            service,
            method,
            path_and_query,
            body,
        };
        self.auth.sign_into(caller, &target, &mut headers);
        headers
    }

    /// A request to `base` + `path_and_query` for `service`, stating `caller` with its proof
    /// (None: no caller at all). `base` is empty for a router in-process, a URL otherwise.
    pub fn request(
        &self,
        base: &str,
        service: &str,
        method: Method,
        path_and_query: &str,
        caller: Option<&Caller>,
        body: Option<Payload>,
    ) -> http::Request<Vec<u8>> {
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(format!("{base}{path_and_query}"));
        let bytes = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, body.content_type);
                body.bytes
            }
            None => Vec::new(),
        };
        if let Some(caller) = caller
            && let Some(headers) = request.headers_mut()
        {
            headers.extend(self.headers(caller, service, &method, path_and_query, &bytes));
        }
        request.body(bytes).expect("the request is well-formed")
    }

    /// [`Self::request`] for a router in-process: `router.oneshot(internal.in_process(...))`.
    pub fn in_process(
        &self,
        service: &str,
        method: Method,
        path_and_query: &str,
        caller: Option<&Caller>,
        body: Option<Payload>,
    ) -> http::Request<axum::body::Body> {
        self.request("", service, method, path_and_query, caller, body)
            .map(axum::body::Body::from)
    }

    /// A [`Self::request`] with an absolute URL, to send with the client `http`.
    pub fn over_http(
        http: &reqwest::Client,
        request: http::Request<Vec<u8>>,
    ) -> reqwest::RequestBuilder {
        let request = reqwest::Request::try_from(request).expect("the URL is absolute");
        reqwest::RequestBuilder::from_parts(http.clone(), request)
    }
}
