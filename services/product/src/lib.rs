//! The product service: catalog (products, categories, stock) and stock reservations for the
//! order service.

mod openapi;
pub use openapi::openapi;
pub mod cache;
mod catalog;
mod categories;
pub mod listing;
pub mod reservations;
mod validate;
pub mod variants;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use souk_common::db::Database;
use souk_common::settings::{self, ConfigError};
use souk_common::{InternalAuth, server};
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/product");

#[derive(Clone, Debug)]
pub struct Config {
    pub database: Database,
    pub internal_secret: String,
    /// The shop's one currency, lowercase ISO 4217 (`SOUK_CURRENCY`, default `usd`).
    pub currency: String,
    /// How long a reservation holds stock before it expires (`SOUK_RESERVATION_TTL_SECS`, 900).
    pub reservation_ttl: Duration,
    /// How often expired reservations are swept (`SOUK_RESERVATION_SWEEP_SECS`, 30).
    pub reservation_sweep_interval: Duration,
    /// Serve public catalog reads from memory, kept fresh by `LISTEN`/`NOTIFY`
    /// (`SOUK_CATALOG_CACHE`, default true).
    pub catalog_cache: bool,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let currency = settings::currency()?;
        let ttl: u64 = settings::parsed("SOUK_RESERVATION_TTL_SECS", 900)?;
        let sweep: u64 = settings::parsed("SOUK_RESERVATION_SWEEP_SECS", 30)?;
        if ttl == 0 {
            return Err(ConfigError::new("SOUK_RESERVATION_TTL_SECS", "must be > 0"));
        }
        if sweep == 0 {
            return Err(ConfigError::new(
                "SOUK_RESERVATION_SWEEP_SECS",
                "must be > 0",
            ));
        }
        Ok(Self {
            database: Database::from_env()?,
            internal_secret: settings::internal_secret()?,
            currency,
            reservation_ttl: Duration::from_secs(ttl),
            reservation_sweep_interval: Duration::from_secs(sweep),
            catalog_cache: settings::parsed("SOUK_CATALOG_CACHE", true)?,
        })
    }
}

/// What handlers share; extractors take the parts they need (`InternalAuth` among them).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub internal: InternalAuth,
    pub config: Arc<Config>,
    pub cache: Arc<cache::CatalogCache>,
    /// Dropped with the last clone of the state (when the server stops): ends the sweeper and
    /// the cache's listener.
    _sweeper: Arc<tokio::sync::watch::Sender<()>>,
}

pub async fn app(config: Config) -> anyhow::Result<Router> {
    let db = config.database.connect().await?;
    Ok(app_on(config, db))
}

/// The service on a pool made by the caller (`app` connects one): its routes, and the
/// reservation sweeper and the cache's listener, which stop when the router is dropped. On a
/// lazy pool, requests refused before any query are answered without a database.
pub fn app_on(config: Config, db: PgPool) -> Router {
    let (stop, stopped) = tokio::sync::watch::channel(());
    tokio::spawn(reservations::sweeper(
        db.clone(),
        config.reservation_sweep_interval,
        stopped.clone(),
    ));
    let cache = cache::CatalogCache::new(config.catalog_cache);
    tokio::spawn(cache::listener(
        cache.clone(),
        config.database.url.clone(),
        stopped,
    ));
    let state = AppState {
        db: db.clone(),
        internal: InternalAuth::new(&config.internal_secret),
        config: Arc::new(config),
        cache,
        _sweeper: Arc::new(stop),
    };
    let routes = Router::new()
        .merge(catalog::router())
        .merge(categories::router())
        .merge(reservations::router())
        .merge(variants::router())
        .route("/openapi.json", server::openapi(openapi()));
    server::wrap("product", routes, state, db)
}
