//! The user service's token verification keys: fetched once, cached, refreshed when a token
//! names an unknown key id (at most once per `MIN_REFRESH` so forged kids cannot hammer it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::Method;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use souk_common::client::ServiceClient;
use souk_common::token::{AUDIENCE, AccessClaims, ISSUER};
use souk_contract::users::{self, JwkSet};
use tokio::sync::Mutex;

const MIN_REFRESH: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Cached {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    published: Arc<JwkSet>,
}

pub struct KeyStore {
    user_service: ServiceClient,
    cached: RwLock<Cached>,
    /// Serialises refreshes and remembers when the last one ran.
    last_refresh: Mutex<Option<Instant>>,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("verification keys unavailable")]
    KeysUnavailable,
}

impl KeyStore {
    pub fn new(user_service: ServiceClient) -> Self {
        // Only EdDSA is accepted: `alg: none` or an HMAC token fails here before any key is used.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            user_service,
            cached: RwLock::new(Cached::default()),
            last_refresh: Mutex::new(None),
            validation,
        }
    }

    fn key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.cached
            .read()
            .expect("key cache lock")
            .by_kid
            .get(kid)
            .cloned()
    }

    pub fn published(&self) -> Arc<JwkSet> {
        self.cached
            .read()
            .expect("key cache lock")
            .published
            .clone()
    }

    /// Fetches the key set unless one was fetched within `MIN_REFRESH`.
    pub async fn refresh(&self) -> Result<(), VerifyError> {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        let set: JwkSet = self
            .user_service
            .call::<(), _>(Method::GET, users::JWKS, None, None)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot fetch verification keys");
                VerifyError::KeysUnavailable
            })?;
        let by_kid = set
            .keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| {
                Some((
                    k.kid.clone(),
                    Arc::new(DecodingKey::from_ed_components(&k.x).ok()?),
                ))
            })
            .collect();
        *self.cached.write().expect("key cache lock") = Cached {
            by_kid,
            published: Arc::new(set),
        };
        *last = Some(Instant::now());
        Ok(())
    }

    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Invalid("unsupported algorithm".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| VerifyError::Invalid("no key id".into()))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(&kid)
                    .ok_or_else(|| VerifyError::Invalid("unknown key id".into()))?
            }
        };
        jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| VerifyError::Invalid(e.to_string()))
    }
}
