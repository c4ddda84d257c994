//! Throttles kept in the database (table `throttle`), so that every replica sees the same
//! counts: failed sign-ins per account and per client address, registrations per address.
//!
//! Each key counts attempts in a fixed window. An attempt is counted *before* the expensive
//! work (argon2), by one statement that increments and returns the count, so a burst of
//! parallel attempts cannot all pass a check and exceed the limit. A failed sign-in that finds
//! its key at the limit blocks the key; each block of a key lasts twice as long as the last
//! (up to a cap), until a successful sign-in clears it or the row is pruned after a quiet day.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// Failed sign-ins. The account limit is what stops guessing one password; the address limit
/// only stops an address guessing across many accounts, so it is far above what any address
/// shared by real shoppers (an office, a carrier NAT) reaches.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub per_account: i32,
    pub per_address: i32,
    pub window_secs: i64,
    /// The first block of an account; each next one doubles, up to `max_lockout_secs`.
    pub lockout_secs: i64,
    pub max_lockout_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 1000,
            window_secs: 900,
            lockout_secs: 60,
            max_lockout_secs: 900,
        }
    }
}

/// Registrations per client address (each costs an argon2 hash and mints an account).
#[derive(Clone, Copy, Debug)]
pub struct RegistrationLimits {
    pub per_address: i32,
    pub window_secs: i64,
}

impl Default for RegistrationLimits {
    fn default() -> Self {
        Self {
            per_address: 30,
            window_secs: 3600,
        }
    }
}

impl RegistrationLimits {
    /// `SOUK_REGISTRATIONS_PER_ADDRESS` and `SOUK_REGISTRATION_WINDOW_SECS`, else the defaults:
    /// read the same way by `souk serve user` and `souk up`.
    pub fn from_env() -> Result<Self, souk_common::settings::ConfigError> {
        use souk_common::settings::parsed;
        let d = Self::default();
        Ok(Self {
            per_address: parsed("SOUK_REGISTRATIONS_PER_ADDRESS", d.per_address)?,
            window_secs: parsed("SOUK_REGISTRATION_WINDOW_SECS", d.window_secs)?,
        })
    }
}

/// Hashed, so the key has a fixed size whatever a client sends as its e-mail.
pub fn account_key(email: &str) -> String {
    let email = email.trim().to_lowercase();
    format!("account:{}", hex::encode(Sha256::digest(email.as_bytes())))
}

pub fn address_key(ip: &str) -> String {
    format!("address:{ip}")
}

pub fn registration_key(ip: &str) -> String {
    format!("register:{ip}")
}

pub enum Count {
    /// Counted: this many attempts in the window so far (this one included).
    Counted { attempts: i32, window_left: u64 },
    /// Refused without counting: the key is blocked for this many more seconds.
    Blocked(u64),
}

fn secs(remaining: f64) -> u64 {
    remaining.ceil().max(1.0) as u64
}

/// Counts one attempt against `key`, atomically, unless the key is blocked.
pub async fn count(db: &PgPool, key: &str, window_secs: i64) -> sqlx::Result<Count> {
    let counted: Option<(i32, f64)> = sqlx::query_as(
        "INSERT INTO throttle AS t (key, window_start, attempts) VALUES ($1, now(), 1)
         ON CONFLICT (key) DO UPDATE SET
           window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $2)
                               THEN now() ELSE t.window_start END,
           attempts = CASE WHEN t.window_start <= now() - make_interval(secs => $2)
                           THEN 1 ELSE t.attempts + 1 END
         WHERE t.blocked_until IS NULL OR t.blocked_until <= now()
         RETURNING attempts,
           EXTRACT(EPOCH FROM (window_start + make_interval(secs => $2) - now()))::float8",
    )
    .bind(key)
    .bind(window_secs as f64)
    .fetch_optional(db)
    .await?;
    if let Some((attempts, left)) = counted {
        return Ok(Count::Counted {
            attempts,
            window_left: secs(left),
        });
    }
    let left: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (blocked_until - now()))::float8 FROM throttle WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(Count::Blocked(secs(left.unwrap_or(1.0))))
}

/// A counted attempt failed. At the limit, the key is blocked for `first_block` doubled once
/// per earlier block (at most `max_block`), and counting starts again after the block.
pub async fn failed(
    db: &PgPool,
    key: &str,
    limit: i32,
    first_block: Duration,
    max_block: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE throttle SET
           blocked_until = CASE WHEN attempts >= $2
             THEN now() + make_interval(secs => LEAST($3 * power(2, LEAST(blocks, 30)), $4))
             ELSE blocked_until END,
           blocks = CASE WHEN attempts >= $2 THEN blocks + 1 ELSE blocks END,
           window_start = CASE WHEN attempts >= $2 THEN now() ELSE window_start END,
           attempts = CASE WHEN attempts >= $2 THEN 0 ELSE attempts END
         WHERE key = $1",
    )
    .bind(key)
    .bind(limit)
    .bind(first_block.as_secs_f64())
    .bind(max_block.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// Takes back one counted attempt that turned out not to be a failure.
pub async fn uncount(db: &PgPool, key: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE throttle SET attempts = GREATEST(attempts - 1, 0) WHERE key = $1")
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

/// A successful sign-in forgets the account's failures and blocks.
pub async fn clear(db: &PgPool, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM throttle WHERE key = $1")
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

/// Rows of keys that have been quiet for a day (no attempt, no block in force).
pub async fn prune(db: &PgPool) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM throttle WHERE window_start < now() - interval '1 day'
           AND (blocked_until IS NULL OR blocked_until < now())",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Prunes every ten minutes, for as long as the service runs.
pub fn spawn_pruning(db: PgPool) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            match prune(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "throttle rows pruned"),
                Err(e) => tracing::warn!(error = %e, "pruning throttle rows failed"),
            }
        }
    });
}
