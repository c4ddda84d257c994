//! The order service: checkout (a saga with compensation), order history and the status
//! lifecycle.

mod openapi;
pub use openapi::openapi;
mod checkout;
mod clients;
mod discount;
mod events;
mod model;
mod orders;
mod promotions;
mod recovery;
mod redeem;
mod saga;
mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use souk_common::db::Database;
use souk_common::settings::{self, ConfigError};
use souk_common::{InternalAuth, server};
use souk_contract::env;
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/order");

/// Where a test can make checkout stop as if the process had died there (once per process).
/// Each leaves the saved state the recovery loop must finish or compensate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// The order row is written (`claiming`); nothing else happened.
    AfterOrderRow,
    /// Stock is reserved and saved on the order (`charging`); no charge was sent.
    AfterReservation,
    /// The charge request was sent but its answer never came back (nor was saved).
    ChargeUnanswered,
    /// The card was charged but the order is not yet marked paid.
    AfterCharge,
    /// The order is marked paid (`completing`); the reservation is not committed yet.
    AfterPaid,
    /// The reservation is committed; the cart and the e-mail are not done yet.
    AfterReservationCommit,
}

/// 20 minutes: a 3-D Secure challenge (bank app, SMS code) takes a shopper a few minutes; 20
/// leaves room for a slow bank or a re-sent code while bounding how long stock is withheld.
pub const DEFAULT_PAYMENT_WINDOW_SECS: u64 = 1200;

#[derive(Clone, Debug)]
pub struct Config {
    pub database: Database,
    pub internal_secret: String,
    pub user_url: String,
    pub product_url: String,
    pub cart_url: String,
    pub payment_url: String,
    /// How often the recovery loop looks for unfinished checkouts.
    pub recovery_interval: Duration,
    /// How long a running checkout owns its order before recovery may take it over.
    pub lease: Duration,
    /// How long an order waits for the shopper to finish a payment (3-D Secure) before its
    /// PaymentIntent is cancelled and its stock released.
    pub payment_window: Duration,
    /// First wait before asking Stripe about a waiting payment when no webhook came; doubled
    /// after each answer that is still undecided, up to a minute.
    pub payment_poll: Duration,
    /// Test-only: crash once at this point of the saga.
    pub fault: Option<FaultPoint>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            database: Database::from_env()?,
            internal_secret: settings::internal_secret()?,
            user_url: settings::base_url(env::USER_URL)?,
            product_url: settings::base_url(env::PRODUCT_URL)?,
            cart_url: settings::base_url(env::CART_URL)?,
            payment_url: settings::base_url(env::PAYMENT_URL)?,
            recovery_interval: Duration::from_secs(settings::parsed(
                "SOUK_RECOVERY_INTERVAL_SECS",
                10,
            )?),
            lease: Duration::from_secs(settings::parsed("SOUK_CHECKOUT_LEASE_SECS", 60)?),
            payment_window: Duration::from_secs(settings::parsed(
                "SOUK_PAYMENT_WINDOW_SECS",
                DEFAULT_PAYMENT_WINDOW_SECS,
            )?),
            payment_poll: Duration::from_secs(settings::parsed("SOUK_PAYMENT_POLL_SECS", 2)?),
            fault: None,
        })
    }
}

/// What handlers share; extractors take the parts they need (`InternalAuth` among them).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub internal: InternalAuth,
    pub clients: Arc<clients::Clients>,
    pub config: Arc<Config>,
    /// Set once the fault point has fired, so it fires only once.
    pub fault_fired: Arc<std::sync::atomic::AtomicBool>,
}

pub async fn app(config: Config) -> anyhow::Result<Router> {
    let db = config.database.connect().await?;
    let internal = InternalAuth::new(&config.internal_secret);
    let state = AppState {
        db: db.clone(),
        clients: Arc::new(clients::Clients::new(&config, &internal)),
        internal,
        config: Arc::new(config),
        fault_fired: Arc::default(),
    };
    recovery::spawn(state.clone());
    let routes = Router::new()
        .merge(checkout::router())
        .merge(orders::router())
        .merge(events::router())
        .merge(promotions::router())
        .merge(redeem::router());
    Ok(server::wrap("order", routes, state, db))
}
