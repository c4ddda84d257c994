//! Who is calling a service. The gateway (or a sibling service) states the caller in
//! `x-souk-principal` and proves it sent it with an HMAC keyed by the internal secret over the
//! value, a timestamp and the request itself: its method, target service, path and query, and
//! the SHA-256 of its body. A service never trusts an identity header without a valid proof, so
//! a forged `x-souk-principal` sent straight to a service gets 401, and a captured proof is
//! good for nothing but repeating the very same request to the same service for a few seconds.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

pub const PRINCIPAL: &str = "x-souk-principal";
pub const PRINCIPAL_TS: &str = "x-souk-principal-ts";
pub const PRINCIPAL_SIG: &str = "x-souk-principal-sig";
/// Headers a client must never be able to set; the gateway strips them from every request.
pub const IDENTITY_HEADERS: [&str; 6] = [
    PRINCIPAL,
    PRINCIPAL_TS,
    PRINCIPAL_SIG,
    "x-user-id",
    "x-user-role",
    "x-forwarded-for",
];

/// How far a proof's timestamp may be from now. A proof is made just before its request is
/// sent, and cluster clocks agree to well under a second, so 15 s covers skew plus a request
/// queued under load; a captured proof can only repeat its own request, within that time.
const MAX_SKEW_SECS: i64 = 15;

/// The request a proof is made for (sender side) or arrived with (receiving side).
#[derive(Clone, Copy, Debug)]
pub struct ProofTarget<'a> {
    /// The receiving service's name (`user`, `product`, ...).
    pub service: &'a str,
    pub method: &'a Method,
    /// Exactly as the receiver sees it: `/internal/users/1?x=y`.
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

/// What the receiving service saw of a request that states a caller, recorded by `scope` for
/// the extractors (they cannot read the body themselves).
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    service: &'static str,
    method: Method,
    path_and_query: String,
    body_sha256: [u8; 32],
}

pub use souk_contract::users::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User { id: Uuid, role: Role },
    Service(String),
}

impl Caller {
    pub fn encode(&self) -> String {
        match self {
            Caller::User { id, role } => format!("user:{id}:{}", role.as_str()),
            Caller::Service(name) => format!("service:{name}"),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        if let Some(name) = s.strip_prefix("service:") {
            return (!name.is_empty()).then(|| Caller::Service(name.to_owned()));
        }
        let rest = s.strip_prefix("user:")?;
        let (id, role) = rest.split_once(':')?;
        Some(Caller::User {
            id: id.parse().ok()?,
            role: Role::parse(role)?,
        })
    }
}

/// Signs and verifies caller proofs. Cheap to clone; the key is set up once at start.
#[derive(Clone)]
pub struct InternalAuth {
    mac: Arc<Hmac<Sha256>>,
}

impl InternalAuth {
    pub fn new(secret: &str) -> Self {
        let mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        Self { mac: Arc::new(mac) }
    }

    fn signature(
        &self,
        principal: &str,
        ts: i64,
        service: &str,
        method: &Method,
        path_and_query: &str,
        body_sha256: &[u8; 32],
    ) -> Hmac<Sha256> {
        let mut mac = (*self.mac).clone();
        // Newline-separated: none of the parts can contain one (header values and request
        // targets cannot), so no two requests give the same input.
        for part in [
            principal.as_bytes(),
            ts.to_string().as_bytes(),
            service.as_bytes(),
            method.as_str().as_bytes(),
            path_and_query.as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"\n");
        }
        mac.update(body_sha256);
        mac
    }

    /// Adds the caller and its proof for `target` to outgoing headers, replacing any there.
    pub fn sign_into(&self, caller: &Caller, target: &ProofTarget<'_>, headers: &mut HeaderMap) {
        let principal = caller.encode();
        let ts = unix_now();
        let body_sha256: [u8; 32] = Sha256::digest(target.body).into();
        let mac = self.signature(
            &principal,
            ts,
            target.service,
            target.method,
            target.path_and_query,
            &body_sha256,
        );
        let sig = hex::encode(mac.finalize().into_bytes());
        headers.insert(
            PRINCIPAL,
            HeaderValue::from_str(&principal).expect("principal is ASCII"),
        );
        headers.insert(PRINCIPAL_TS, HeaderValue::from(ts));
        headers.insert(
            PRINCIPAL_SIG,
            HeaderValue::from_str(&sig).expect("hex is ASCII"),
        );
    }

    /// `Ok(None)`: no caller stated (anonymous). `Err`: a caller stated without a valid proof
    /// for this very request.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        received: Option<&ReceivedRequest>,
    ) -> Result<Option<Caller>, ApiError> {
        let Some(principal) = headers.get(PRINCIPAL) else {
            return Ok(None);
        };
        let forged = || ApiError::unauthorized("the caller's identity could not be verified");
        let received = received.ok_or_else(forged)?;
        let principal = principal.to_str().map_err(|_| forged())?;
        let ts: i64 = header_str(headers, PRINCIPAL_TS)
            .and_then(|v| v.parse().ok())
            .ok_or_else(forged)?;
        let sig = header_str(headers, PRINCIPAL_SIG)
            .and_then(|v| hex::decode(v).ok())
            .ok_or_else(forged)?;
        if (unix_now() - ts).abs() > MAX_SKEW_SECS {
            return Err(forged());
        }
        self.signature(
            principal,
            ts,
            received.service,
            &received.method,
            &received.path_and_query,
            &received.body_sha256,
        )
        .verify_slice(&sig)
        .map_err(|_| forged())?;
        Caller::decode(principal).map(Some).ok_or_else(forged)
    }
}

/// For the request frame (`frame`): when a request states a caller, reads its body (at most
/// 1 MiB) and records what the proof must cover. Without a stated caller it is left as it is.
pub(crate) async fn received(service: &'static str, req: Request) -> Result<Request, Response> {
    if !req.headers().contains_key(PRINCIPAL) {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, crate::server::MAX_BODY_BYTES).await else {
        return Err(ApiError::payload_too_large().into_response());
    };
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    let received = ReceivedRequest {
        service,
        method: parts.method.clone(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        body_sha256: Sha256::digest(&body).into(),
    };
    parts.extensions.insert(received);
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// The path prefix of the endpoints that only Souk's services may call.
pub const INTERNAL_PREFIX: &str = "/internal/";

/// For the request frame of every service (`server::wrap`, after `received`): a request for
/// an internal endpoint goes on only with a verified service caller (401 without a caller, 403
/// for a user), whose name `span` records as `caller`. So no internal endpoint depends on its
/// handler remembering the check.
pub(crate) fn services_only(
    auth: &InternalAuth,
    req: &Request,
    span: &tracing::Span,
) -> Result<(), ApiError> {
    if !req.uri().path().starts_with(INTERNAL_PREFIX) {
        return Ok(());
    }
    match auth.verify(req.headers(), req.extensions().get::<ReceivedRequest>())? {
        Some(Caller::Service(name)) => {
            span.record("caller", name.as_str());
            Ok(())
        }
        Some(Caller::User { .. }) => Err(ApiError::forbidden("internal endpoint: services only")),
        None => Err(ApiError::unauthorized("internal endpoint: services only")),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The verified caller, if any.
pub struct MaybeCaller(pub Option<Caller>);

impl<S> FromRequestParts<S> for MaybeCaller
where
    InternalAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        InternalAuth::from_ref(state)
            .verify(&parts.headers, parts.extensions.get::<ReceivedRequest>())
            .map(MaybeCaller)
    }
}

/// A signed-in shopper or admin, as vouched for by the gateway.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    InternalAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match MaybeCaller::from_request_parts(parts, state).await?.0 {
            Some(Caller::User { id, role }) => Ok(AuthUser { id, role }),
            _ => Err(ApiError::unauthorized("sign in to use this endpoint")),
        }
    }
}

/// A user with the admin role; 403 for a customer.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub AuthUser);

impl<S> FromRequestParts<S> for AdminUser
where
    InternalAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(ApiError::forbidden("this endpoint is for admins"));
        }
        Ok(AdminUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn received(t: &ProofTarget<'_>) -> ReceivedRequest {
        ReceivedRequest {
            service: Box::leak(t.service.to_owned().into_boxed_str()),
            method: t.method.clone(),
            path_and_query: t.path_and_query.to_owned(),
            body_sha256: Sha256::digest(t.body).into(),
        }
    }

    #[test]
    fn signed_caller_verifies_and_tampering_fails() {
        let auth = InternalAuth::new(SECRET);
        let caller = Caller::User {
            id: Uuid::now_v7(),
            role: Role::Customer,
        };
        let target = ProofTarget {
            service: "user",
            method: &Method::GET,
            path_and_query: "/api/v1/users/me",
            body: b"",
        };
        let mut headers = HeaderMap::new();
        auth.sign_into(&caller, &target, &mut headers);
        let seen = received(&target);
        assert_eq!(auth.verify(&headers, Some(&seen)).unwrap(), Some(caller));
        assert!(
            auth.verify(&headers, None).is_err(),
            "no record of the request"
        );

        let admin = Caller::User {
            id: Uuid::now_v7(),
            role: Role::Admin,
        };
        headers.insert(PRINCIPAL, HeaderValue::from_str(&admin.encode()).unwrap());
        assert!(auth.verify(&headers, Some(&seen)).is_err());

        let other = InternalAuth::new("another-secret-another-secret-xx");
        let mut headers = HeaderMap::new();
        other.sign_into(&Caller::Service("order".into()), &target, &mut headers);
        assert!(auth.verify(&headers, Some(&seen)).is_err());
        assert_eq!(auth.verify(&HeaderMap::new(), Some(&seen)).unwrap(), None);
    }

    #[test]
    fn a_proof_is_bound_to_its_request() {
        let auth = InternalAuth::new(SECRET);
        let signed = ProofTarget {
            service: "product",
            method: &Method::POST,
            path_and_query: "/internal/reservations?dry=1",
            body: br#"{"quantity":1}"#,
        };
        let mut headers = HeaderMap::new();
        auth.sign_into(&Caller::Service("order".into()), &signed, &mut headers);
        assert!(auth.verify(&headers, Some(&received(&signed))).is_ok());
        for other in [
            ProofTarget {
                service: "user",
                ..signed
            },
            ProofTarget {
                method: &Method::PUT,
                ..signed
            },
            ProofTarget {
                path_and_query: "/internal/reservations",
                ..signed
            },
            ProofTarget {
                path_and_query: "/internal/reservations?dry=0",
                ..signed
            },
            ProofTarget {
                body: br#"{"quantity":9}"#,
                ..signed
            },
        ] {
            assert!(
                auth.verify(&headers, Some(&received(&other))).is_err(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn an_old_proof_is_refused() {
        let auth = InternalAuth::new(SECRET);
        let target = ProofTarget {
            service: "cart",
            method: &Method::GET,
            path_and_query: "/api/v1/cart",
            body: b"",
        };
        let principal = Caller::Service("order".into()).encode();
        let ts = unix_now() - MAX_SKEW_SECS - 1;
        let sha: [u8; 32] = Sha256::digest(b"").into();
        let mac = auth.signature(&principal, ts, "cart", &Method::GET, "/api/v1/cart", &sha);
        let mut headers = HeaderMap::new();
        headers.insert(PRINCIPAL, HeaderValue::from_str(&principal).unwrap());
        headers.insert(PRINCIPAL_TS, HeaderValue::from(ts));
        headers.insert(
            PRINCIPAL_SIG,
            HeaderValue::from_str(&hex::encode(mac.finalize().into_bytes())).unwrap(),
        );
        assert!(auth.verify(&headers, Some(&received(&target))).is_err());
    }
}
