//! Who is calling a service. The gateway (or a sibling service) states the caller in
//! `x-souk-principal` and proves it sent it with an HMAC over the value and a timestamp, keyed
//! by the internal secret. A service never trusts an identity header without a valid proof, so a
//! forged `x-souk-principal` sent straight to a service gets 401.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use sha2::Sha256;
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

/// How far a proof's timestamp may be from now: short, so a captured header is soon useless.
const MAX_SKEW_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

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

    fn signature(&self, principal: &str, ts: i64) -> Hmac<Sha256> {
        let mut mac = (*self.mac).clone();
        mac.update(principal.as_bytes());
        mac.update(b"\n");
        mac.update(ts.to_string().as_bytes());
        mac
    }

    /// Adds the caller and its proof to outgoing headers, replacing any already there.
    pub fn sign_into(&self, caller: &Caller, headers: &mut HeaderMap) {
        let principal = caller.encode();
        let ts = unix_now();
        let sig = hex::encode(self.signature(&principal, ts).finalize().into_bytes());
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

    /// `Ok(None)`: no caller stated (anonymous). `Err`: a caller stated without a valid proof.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        let Some(principal) = headers.get(PRINCIPAL) else {
            return Ok(None);
        };
        let forged = || ApiError::unauthorized("the caller's identity could not be verified");
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
        self.signature(principal, ts)
            .verify_slice(&sig)
            .map_err(|_| forged())?;
        Caller::decode(principal).map(Some).ok_or_else(forged)
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
            .verify(&parts.headers)
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

/// Another Souk service; user tokens can never pass as one.
#[derive(Debug, Clone)]
pub struct ServiceCaller(pub String);

impl<S> FromRequestParts<S> for ServiceCaller
where
    InternalAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match MaybeCaller::from_request_parts(parts, state).await?.0 {
            Some(Caller::Service(name)) => Ok(ServiceCaller(name)),
            Some(Caller::User { .. }) => {
                Err(ApiError::forbidden("internal endpoint: services only"))
            }
            None => Err(ApiError::unauthorized("internal endpoint: services only")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_caller_verifies_and_tampering_fails() {
        let auth = InternalAuth::new("0123456789abcdef0123456789abcdef");
        let caller = Caller::User {
            id: Uuid::now_v7(),
            role: Role::Customer,
        };
        let mut headers = HeaderMap::new();
        auth.sign_into(&caller, &mut headers);
        assert_eq!(auth.verify(&headers).unwrap(), Some(caller));

        let admin = Caller::User {
            id: Uuid::now_v7(),
            role: Role::Admin,
        };
        headers.insert(PRINCIPAL, HeaderValue::from_str(&admin.encode()).unwrap());
        assert!(auth.verify(&headers).is_err());

        let other = InternalAuth::new("another-secret-another-secret-xx");
        let mut headers = HeaderMap::new();
        other.sign_into(&Caller::Service("order".into()), &mut headers);
        assert!(auth.verify(&headers).is_err());
        assert_eq!(auth.verify(&HeaderMap::new()).unwrap(), None);
    }
}
