//! The access token's claims and the published key set: issued by the user service, verified
//! by the gateway. Both sides read these types, so they cannot drift apart.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::caller::Role;

pub const ISSUER: &str = "souk";
pub const AUDIENCE: &str = "souk-api";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
}

/// One Ed25519 public key as a JWK (RFC 8037).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}
