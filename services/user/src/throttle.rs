//! Failed-login counting per account and per client address, in the database so that every
//! replica sees the same counts. A key over its limit answers 429 until its window ends.

use sqlx::PgPool;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub per_account: i32,
    pub per_address: i32,
    pub window_secs: i64,
}

pub fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

pub fn address_key(ip: &str) -> String {
    format!("address:{ip}")
}

/// Seconds until the caller may try again, if either key is over its limit.
pub async fn blocked_for(
    db: &PgPool,
    limits: Limits,
    account: &str,
    address: &str,
) -> sqlx::Result<Option<u64>> {
    let rows: Vec<(String, i32, f64)> = sqlx::query_as(
        "SELECT key, failures, EXTRACT(EPOCH FROM (window_start + make_interval(secs => $2) - now()))::float8
         FROM login_failures
         WHERE key = ANY($1) AND window_start > now() - make_interval(secs => $2)",
    )
    .bind([account, address])
    .bind(limits.window_secs as f64)
    .fetch_all(db)
    .await?;
    let wait = rows
        .into_iter()
        .filter(|(key, failures, _)| {
            let limit = if key == account {
                limits.per_account
            } else {
                limits.per_address
            };
            *failures >= limit
        })
        .map(|(_, _, remaining)| remaining.ceil().max(1.0) as u64)
        .max();
    Ok(wait)
}

/// Counts one failure against each key, starting a new window where the old one has ended.
pub async fn record_failure(db: &PgPool, limits: Limits, keys: &[&str]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO login_failures (key, window_start, failures)
         SELECT k, now(), 1 FROM unnest($1::text[]) AS k
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN login_failures.window_start <= now() - make_interval(secs => $2)
                           THEN 1 ELSE login_failures.failures + 1 END,
           window_start = CASE WHEN login_failures.window_start <= now() - make_interval(secs => $2)
                               THEN now() ELSE login_failures.window_start END",
    )
    .bind(keys)
    .bind(limits.window_secs as f64)
    .execute(db)
    .await?;
    Ok(())
}

/// A successful sign-in clears the account's count (the address keeps its own).
pub async fn clear(db: &PgPool, account: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(account)
        .execute(db)
        .await?;
    Ok(())
}
