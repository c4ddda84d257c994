//! Typed settings read once at start-up. A bad value names its variable and says what is wrong.

use souk_contract::env;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A variable that must be set and non-empty.
pub fn required(var: &str) -> Result<String, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(ConfigError::new(var, "is set but empty")),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::new(var, "is not set")),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(var, "is not valid UTF-8")),
    }
}

/// A variable that may be absent; empty counts as absent.
pub fn optional(var: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(var, "is not valid UTF-8")),
    }
}

/// A variable parsed into `T`, with a default when absent.
pub fn parsed<T>(var: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(var)? {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(var, format!("cannot parse {raw:?}: {e}"))),
    }
}

/// An HTTP base URL without a trailing slash.
pub fn base_url(var: &str) -> Result<String, ConfigError> {
    let raw = required(var)?;
    let url = url::Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(var, format!("not a URL ({e}): {raw:?}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(var, "must be an http:// or https:// URL"));
    }
    Ok(raw.trim().trim_end_matches('/').to_owned())
}

/// The internal secret that proves a request came from the gateway or a sibling service.
pub fn internal_secret() -> Result<String, ConfigError> {
    let secret = required(env::INTERNAL_SECRET)?;
    if secret.len() < 32 {
        return Err(ConfigError::new(
            env::INTERNAL_SECRET,
            "must be at least 32 characters",
        ));
    }
    Ok(secret)
}

/// `SOUK_LISTEN_ADDR`, default `0.0.0.0:8080` (what a container wants).
pub fn listen_addr() -> Result<std::net::SocketAddr, ConfigError> {
    parsed(
        env::LISTEN_ADDR,
        std::net::SocketAddr::from(([0, 0, 0, 0], 8080)),
    )
}

/// How long `souk serve` keeps serving after SIGTERM (`SOUK_SHUTDOWN_DRAIN_MS`, default 5 s):
/// enough for kube-proxy to drop the pod from its Services, well inside the default 30 s grace.
pub fn shutdown_drain() -> Result<std::time::Duration, ConfigError> {
    parsed("SOUK_SHUTDOWN_DRAIN_MS", 5_000u64).map(std::time::Duration::from_millis)
}

/// `SOUK_OPS_ADDR`, default `0.0.0.0:9090`: `/metrics` and the detailed `/readyz`, for
/// Prometheus and operators only (never routed from outside the cluster).
pub fn ops_addr() -> Result<std::net::SocketAddr, ConfigError> {
    parsed(
        env::OPS_ADDR,
        std::net::SocketAddr::from(([0, 0, 0, 0], 9090)),
    )
}

/// The shop's one currency (`SOUK_CURRENCY`, default `usd`): a three-letter ISO 4217 code,
/// lowercase as Stripe takes it. The product and cart services read it alike.
pub fn currency() -> Result<String, ConfigError> {
    let currency = parsed("SOUK_CURRENCY", "usd".to_owned())?
        .trim()
        .to_ascii_lowercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ConfigError::new(
            "SOUK_CURRENCY",
            "must be a three-letter ISO 4217 code, e.g. usd",
        ));
    }
    Ok(currency)
}
