//! Access tokens (short-lived EdDSA JWTs with a key id) and refresh tokens (random, opaque,
//! stored only as SHA-256 hashes).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use sha2::{Digest, Sha256};
use souk_common::caller::Role;
use souk_common::token::{AUDIENCE, AccessClaims, ISSUER};
use souk_contract::users::{Jwk, JwkSet};
use uuid::Uuid;

/// The signing key, parsed once at start; the JWKS document is prepared once too.
pub struct TokenKeys {
    encoding: EncodingKey,
    header: Header,
    jwks: JwkSet,
    pub access_ttl_secs: i64,
}

impl TokenKeys {
    pub fn from_pem(pem: &str, access_ttl_secs: i64) -> anyhow::Result<Self> {
        let signing = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 PEM private key: {e}"))?;
        let public = signing.verifying_key().to_bytes();
        let kid = hex::encode(&Sha256::digest(public)[..8]);
        let encoding = EncodingKey::from_ed_pem(pem.trim().as_bytes())?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(public),
            kid,
            alg: "EdDSA".into(),
            use_: "sig".into(),
        };
        Ok(Self {
            encoding,
            header,
            jwks: JwkSet { keys: vec![jwk] },
            access_ttl_secs,
        })
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    pub fn access_token(&self, user_id: Uuid, role: Role) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id,
            role,
            iat: now,
            exp: now + self.access_ttl_secs,
        };
        Ok(jsonwebtoken::encode(&self.header, &claims, &self.encoding)?)
    }
}

/// A new Ed25519 private key as PKCS#8 PEM (for `souk up` and for operators to seed a Secret).
pub fn generate_private_key_pem() -> String {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .expect("encoding a fresh key works")
        .to_string()
}

/// A fresh refresh token: 32 random bytes, base64url. Only its hash is stored.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_verifies_with_the_published_key() {
        let keys = TokenKeys::from_pem(&generate_private_key_pem(), 900).unwrap();
        let token = keys.access_token(Uuid::now_v7(), Role::Admin).unwrap();
        let jwk = &keys.jwks().keys[0];
        let key = jsonwebtoken::DecodingKey::from_ed_components(&jwk.x).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        let data = jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims.role, Role::Admin);
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
            Some(jwk.kid.as_str())
        );
    }
}
