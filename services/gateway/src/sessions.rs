//! Whether a token's user still exists, and their current role. A token stays valid for its
//! whole lifetime, so without this a deleted or demoted user would keep access until expiry.
//! Answers are cached for a few seconds per user, so the user service sees at most one lookup
//! per user per TTL. When the user service cannot answer, nothing is assumed: the request gets
//! 503 (a token issued before a demotion must not regain its old role during an outage).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use souk_common::client::{CallError, ServiceClient};
use souk_common::{Role, token::AccessClaims};
use souk_contract::users;
use uuid::Uuid;

/// Beyond this many cached users the cache starts over: memory stays bounded.
const MAX_ENTRIES: usize = 100_000;

pub struct Sessions {
    user_service: ServiceClient,
    ttl: Duration,
    cache: Mutex<HashMap<Uuid, (Option<Role>, Instant)>>,
}

impl Sessions {
    pub fn new(user_service: ServiceClient, ttl: Duration) -> Self {
        Self {
            user_service,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The user's current role, `Ok(None)` when the account no longer exists, `Err` when the
    /// user service cannot say and the cached answer (if any) is older than the TTL.
    pub async fn current_role(&self, claims: &AccessClaims) -> Result<Option<Role>, CallError> {
        if let Some((role, at)) = self
            .cache
            .lock()
            .expect("session cache lock")
            .get(&claims.sub)
            .copied()
            && at.elapsed() < self.ttl
        {
            return Ok(role);
        }
        let path = users::user(claims.sub);
        let role = match self
            .user_service
            .call::<(), users::User>(Method::GET, &path, None, None)
            .await
        {
            Ok(view) => Some(view.role),
            Err(CallError::Api(e)) if e.status == StatusCode::NOT_FOUND => None,
            Err(e) => {
                tracing::warn!(error = %e, "user lookup failed; refusing the request");
                return Err(e);
            }
        };
        let mut cache = self.cache.lock().expect("session cache lock");
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(claims.sub, (role, Instant::now()));
        Ok(role)
    }
}
