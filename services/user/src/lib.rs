//! The user service: accounts, sign-in, tokens, profiles and admins.

mod openapi;
pub use openapi::openapi;
mod admin;
mod auth;
mod password;
mod profile;
mod throttle;
pub use throttle::{Limits as LoginLimits, RegistrationLimits};
pub mod tokens;

use souk_contract::env;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use souk_common::db::Database;
use souk_common::settings::{self, ConfigError};
use souk_common::{InternalAuth, server};
use sqlx::PgPool;

pub use admin::{AdminSeeding, ensure_admin, promote_admin};
pub use throttle::prune as prune_throttle;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/user");

#[derive(Clone)]
pub struct Config {
    pub database: Database,
    pub internal_secret: String,
    /// Ed25519 private key, PKCS#8 PEM.
    pub jwt_private_key_pem: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_days: i64,
    /// The first admin, created or promoted at start (idempotent).
    pub admin: Option<AdminSeed>,
    pub login_limits: throttle::Limits,
    pub registration_limits: throttle::RegistrationLimits,
}

#[derive(Clone)]
pub struct AdminSeed {
    pub email: String,
    pub password: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let admin = match (
            settings::optional(env::ADMIN_EMAIL)?,
            settings::optional(env::ADMIN_PASSWORD)?,
        ) {
            (Some(email), Some(password)) => Some(AdminSeed { email, password }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    env::ADMIN_PASSWORD,
                    "is required with SOUK_ADMIN_EMAIL",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    env::ADMIN_EMAIL,
                    "is required with SOUK_ADMIN_PASSWORD",
                ));
            }
        };
        Ok(Self {
            database: Database::from_env()?,
            internal_secret: settings::internal_secret()?,
            jwt_private_key_pem: settings::required(env::JWT_PRIVATE_KEY)?,
            access_ttl_secs: settings::parsed("SOUK_ACCESS_TOKEN_TTL_SECS", 900)?,
            refresh_ttl_days: settings::parsed("SOUK_REFRESH_TOKEN_TTL_DAYS", 30)?,
            admin,
            login_limits: {
                let d = throttle::Limits::default();
                throttle::Limits {
                    per_account: settings::parsed(
                        "SOUK_LOGIN_MAX_FAILURES_PER_ACCOUNT",
                        d.per_account,
                    )?,
                    per_address: settings::parsed(
                        "SOUK_LOGIN_MAX_FAILURES_PER_ADDRESS",
                        d.per_address,
                    )?,
                    window_secs: settings::parsed("SOUK_LOGIN_FAILURE_WINDOW_SECS", d.window_secs)?,
                    lockout_secs: settings::parsed("SOUK_LOGIN_LOCKOUT_SECS", d.lockout_secs)?,
                    max_lockout_secs: settings::parsed(
                        "SOUK_LOGIN_MAX_LOCKOUT_SECS",
                        d.max_lockout_secs,
                    )?,
                }
            },
            registration_limits: throttle::RegistrationLimits::from_env()?,
        })
    }
}

/// What handlers share; extractors take the parts they need (`InternalAuth` among them).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub internal: InternalAuth,
    pub keys: Arc<tokens::TokenKeys>,
    pub config: Arc<Config>,
}

/// Connects, checks the key, seeds the admin and returns the service's HTTP app.
pub async fn app(config: Config) -> anyhow::Result<Router> {
    let keys = tokens::TokenKeys::from_pem(&config.jwt_private_key_pem, config.access_ttl_secs)
        .map_err(|e| anyhow::anyhow!("configuration: SOUK_JWT_PRIVATE_KEY: {e}"))?;
    let db = config.database.connect().await?;
    if let Some(seed) = &config.admin {
        ensure_admin(&db, &seed.email, &seed.password, "Admin").await?;
    }
    throttle::spawn_pruning(db.clone());
    let state = AppState {
        db: db.clone(),
        internal: InternalAuth::new(&config.internal_secret),
        keys: Arc::new(keys),
        config: Arc::new(config),
    };
    let routes = Router::new()
        .merge(auth::router())
        .merge(profile::router())
        .merge(admin::router());
    Ok(server::wrap("user", routes, state, db))
}
