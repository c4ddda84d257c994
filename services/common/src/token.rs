//! The access token's claims: issued by the user service, verified by the gateway (with the key
//! set of `souk_contract::users::JWKS`). Both sides read these types, so they cannot drift apart.

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
