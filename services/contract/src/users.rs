//! The user service's internal endpoints: a user as the other services see them (the order
//! service's checkout reads the address, the gateway the current role) and the keys that
//! verify access tokens (the gateway).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `GET` -> `JwkSet`: the public keys of the access tokens the user service signs.
pub const JWKS: &str = "/internal/jwks";

/// `GET` -> `User`; 404 `not_found` when the account does not exist (any more).
pub fn user(id: Uuid) -> String {
    format!("/internal/users/{id}")
}

/// What an account may do: a `customer` shops; an `admin` also manages the catalog, orders,
/// promotions and accounts.
// The gateway states it to services with every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A postal address. On input every field is trimmed (an empty optional field counts as absent) and `country` is upper-cased; errors name `shipping_address.<field>`.
// The user's profile keeps one, each order a copy. The limits are `souk_common::address`'s.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ShippingAddress {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub line1: String,
    /// Omitted from responses when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200, nullable = false)]
    pub line2: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    /// Omitted from responses when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200, nullable = false)]
    pub state: Option<String>,
    #[schema(min_length = 1, max_length = 20)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `US` (answered upper-case).
    #[schema(min_length = 2, max_length = 2, examples("US"))]
    pub country: String,
}

/// An account as the user service answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub shipping_address: Option<ShippingAddress>,
    pub created_at: DateTime<Utc>,
}

/// One Ed25519 public key as a JWK (RFC 8037).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    #[schema(schema_with = okp)]
    pub kty: String,
    #[schema(schema_with = ed25519)]
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    pub kid: String,
    #[schema(schema_with = eddsa)]
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(schema_with = sig)]
    pub use_: String,
}

// The members of a `Jwk` that have one value (RFC 8037's key type, curve and algorithm).
fn okp() -> utoipa::openapi::schema::Object {
    crate::openapi::const_string("OKP")
}
fn ed25519() -> utoipa::openapi::schema::Object {
    crate::openapi::const_string("Ed25519")
}
fn eddsa() -> utoipa::openapi::schema::Object {
    crate::openapi::const_string("EdDSA")
}
fn sig() -> utoipa::openapi::schema::Object {
    crate::openapi::const_string("sig")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}
