//! The cart service: one cart per user, priced live from the product service.

mod openapi;
pub use openapi::openapi;
mod cart;
mod catalog;
mod claims;
mod edit;
mod promotion;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use souk_common::client::{ServiceClient, http_client};
use souk_common::db::Database;
use souk_common::settings::{self, ConfigError};
use souk_common::{InternalAuth, server};
use souk_contract::env;
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/cart");

#[derive(Clone, Debug)]
pub struct Config {
    pub database: Database,
    pub internal_secret: String,
    /// The product service's base URL (`SOUK_PRODUCT_URL`).
    pub product_url: String,
    /// The order service's base URL (`SOUK_ORDER_URL`): it prices promotion codes.
    pub order_url: String,
    /// The shop's currency, shown on an empty cart (`SOUK_CURRENCY`, default `usd`).
    pub currency: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            database: Database::from_env()?,
            internal_secret: settings::internal_secret()?,
            product_url: settings::base_url(env::PRODUCT_URL)?,
            order_url: settings::base_url(env::ORDER_URL)?,
            currency: settings::currency()?,
        })
    }
}

/// What handlers share; extractors take the parts they need (`InternalAuth` among them).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub internal: InternalAuth,
    #[from_ref(skip)]
    pub products: ServiceClient,
    #[from_ref(skip)]
    pub orders: ServiceClient,
    pub config: Arc<Config>,
}

pub async fn app(config: Config) -> anyhow::Result<Router> {
    let db = config.database.connect().await?;
    let internal = InternalAuth::new(&config.internal_secret);
    let http = http_client(server::SERVICE_CALL_TIMEOUT);
    let products = ServiceClient::new(
        http.clone(),
        config.product_url.clone(),
        internal.clone(),
        "cart",
        "product",
    );
    let orders = ServiceClient::new(
        http,
        config.order_url.clone(),
        internal.clone(),
        "cart",
        "order",
    );
    let state = AppState {
        db: db.clone(),
        internal,
        products,
        orders,
        config: Arc::new(config),
    };
    let routes = Router::new()
        .merge(cart::router())
        .merge(claims::router())
        .merge(promotion::router())
        .route("/openapi.json", server::openapi(openapi()));
    // Readiness is the database only: reads keep working (stale prices) without the catalog.
    Ok(server::wrap("cart", routes, state, db))
}
