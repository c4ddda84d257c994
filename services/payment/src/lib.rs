//! The payment service: charges and refunds through Stripe (for the order service), Stripe's
//! webhooks, and the order confirmation e-mails (an outbox in the database, sent with lettre).

mod openapi;
pub use openapi::openapi;
pub mod email;
mod payments;
pub mod stripe;
mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use souk_common::client::{ServiceClient, http_client};
use souk_common::db::Database;
use souk_common::settings::{self, ConfigError};
use souk_common::{InternalAuth, server};
use souk_contract::env;
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");

/// Where the order confirmation e-mails go when no SMTP server is configured.
pub const DEFAULT_MAIL_DIR: &str = ".souk/mail";
pub const DEFAULT_MAIL_FROM: &str = "Souk <orders@souk.local>";

#[derive(Clone, Debug)]
pub struct Config {
    pub database: Database,
    pub internal_secret: String,
    /// `STRIPE_SECRET_KEY` (`sk_...`).
    pub stripe_secret_key: String,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_...`): the webhook endpoint's signing secret.
    pub stripe_webhook_secret: String,
    /// `STRIPE_API_BASE`: None is Stripe itself; the emulator in tests and `souk up`.
    pub stripe_api_base: Option<String>,
    /// `SOUK_ORDER_URL`: told about payment events from webhooks.
    pub order_url: String,
    /// `SOUK_SMTP_URL`, e.g. `smtp://127.0.0.1:2525`. None: e-mails are written to `mail_dir`.
    pub smtp_url: Option<String>,
    /// `SOUK_SMTP_CA_FILE`: PEM CA certificates trusted for the SMTP server's TLS certificate
    /// besides the public (Mozilla) roots, e.g. a private relay's CA.
    pub smtp_ca_file: Option<PathBuf>,
    /// `SOUK_MAIL_DIR` (default `.souk/mail`): `.eml` files when there is no SMTP server.
    pub mail_dir: PathBuf,
    /// `SOUK_MAIL_FROM` (default `Souk <orders@souk.local>`).
    pub mail_from: String,
    /// `SOUK_OUTBOX_POLL_MS` (default 1000): how often the e-mail sender looks for due mail.
    pub outbox_poll_interval: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let stripe_secret_key = settings::required(env::STRIPE_SECRET_KEY)?;
        if !stripe_secret_key.starts_with("sk_") {
            return Err(ConfigError::new(
                env::STRIPE_SECRET_KEY,
                "must be a secret key (sk_test_... or sk_live_...)",
            ));
        }
        let stripe_api_base = match settings::optional(env::STRIPE_API_BASE)? {
            Some(_) => Some(settings::base_url(env::STRIPE_API_BASE)? + "/"),
            None => None,
        };
        let smtp_ca_file = settings::optional("SOUK_SMTP_CA_FILE")?.map(PathBuf::from);
        let smtp_ca_pem = match &smtp_ca_file {
            Some(path) => Some(
                email::read_ca_file(path).map_err(|e| ConfigError::new("SOUK_SMTP_CA_FILE", e))?,
            ),
            None => None,
        };
        let smtp_url = settings::optional(env::SMTP_URL)?;
        if let Some(url) = &smtp_url {
            email::smtp_transport(url, smtp_ca_pem.as_deref())
                .map_err(|e| ConfigError::new(env::SMTP_URL, e))?;
        }
        let mail_from: String = settings::parsed(env::MAIL_FROM, DEFAULT_MAIL_FROM.to_owned())?;
        mail_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError::new(env::MAIL_FROM, e.to_string()))?;
        Ok(Self {
            database: Database::from_env()?,
            internal_secret: settings::internal_secret()?,
            stripe_secret_key,
            stripe_webhook_secret: settings::required(env::STRIPE_WEBHOOK_SECRET)?,
            stripe_api_base,
            order_url: settings::base_url(env::ORDER_URL)?,
            smtp_url,
            smtp_ca_file,
            mail_dir: settings::parsed("SOUK_MAIL_DIR", PathBuf::from(DEFAULT_MAIL_DIR))?,
            mail_from,
            outbox_poll_interval: Duration::from_millis(settings::parsed(
                "SOUK_OUTBOX_POLL_MS",
                1000u64,
            )?),
        })
    }
}

/// What handlers share; extractors take the parts they need (`InternalAuth` among them).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub internal: InternalAuth,
    pub stripe: stripe::StripeGateway,
    pub webhook_secret: Arc<str>,
    pub order: ServiceClient,
    pub outbox: email::OutboxHandle,
}

/// Connects, starts the e-mail sender (stopped when the app is dropped) and returns the app.
pub async fn app(config: Config) -> anyhow::Result<Router> {
    let stripe =
        stripe::StripeGateway::new(&config.stripe_secret_key, config.stripe_api_base.as_deref())
            .map_err(|e| {
                anyhow::anyhow!("configuration: STRIPE_SECRET_KEY / STRIPE_API_BASE: {e}")
            })?;
    let smtp_ca_pem = match &config.smtp_ca_file {
        Some(path) => Some(
            email::read_ca_file(path)
                .map_err(|e| anyhow::anyhow!("configuration: SOUK_SMTP_CA_FILE: {e}"))?,
        ),
        None => None,
    };
    let mailer = email::Mailer::new(
        config.smtp_url.as_deref(),
        smtp_ca_pem.as_deref(),
        &config.mail_dir,
    )?;
    let from: lettre::message::Mailbox = config
        .mail_from
        .parse()
        .map_err(|e| anyhow::anyhow!("configuration: SOUK_MAIL_FROM: {e}"))?;
    let db = config.database.connect().await?;
    let internal = InternalAuth::new(&config.internal_secret);
    let order = ServiceClient::new(
        http_client(server::SERVICE_CALL_TIMEOUT),
        config.order_url.clone(),
        internal.clone(),
        "payment",
        "order",
    );
    let outbox = email::OutboxHandle::spawn(db.clone(), mailer, from, config.outbox_poll_interval);
    let state = AppState {
        db: db.clone(),
        internal,
        stripe,
        webhook_secret: config.stripe_webhook_secret.as_str().into(),
        order,
        outbox,
    };
    let routes = Router::new()
        .merge(payments::router())
        .merge(webhook::router())
        .merge(email::router());
    Ok(server::wrap("payment", routes, state, db))
}
