//! Starts all six services in one process, each on its own port, talking to each other over
//! HTTP exactly as in production.

use souk_contract::env;
use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Context;
use souk_common::db::Database;
use souk_common::{db, server, settings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{SERVICES, has_database, migrator};

/// Every service's configuration, built from local defaults and adjustable before start.
#[derive(Clone)]
pub struct PlatformConfig {
    pub user: souk_user::Config,
    pub product: souk_product::Config,
    pub cart: souk_cart::Config,
    pub order: souk_order::Config,
    pub payment: souk_payment::Config,
    pub gateway: souk_gateway::Config,
    /// Timeouts and caps of every listener (`SOUK_HEADER_READ_TIMEOUT_MS` etc., as `souk serve`).
    pub connections: server::ConnectionLimits,
}

/// What `souk up` and the tests choose; everything else has a local default.
pub struct PlatformOptions {
    /// A PostgreSQL server URL; each service gets database `<prefix>_<service>` on it.
    pub server_url: String,
    pub database_prefix: String,
    pub gateway_addr: SocketAddr,
    /// The gateway's ops listener (`/metrics`; in one process it shows every service's series).
    pub gateway_ops_addr: SocketAddr,
    pub internal_secret: String,
    pub jwt_private_key_pem: String,
    pub admin: Option<souk_user::AdminSeed>,
    /// Where payments go. None: no Stripe is reachable and charges answer 503 (the platform
    /// still starts).
    pub stripe: Option<StripeSettings>,
    /// An SMTP server for the confirmation e-mails; None writes `.eml` files to `mail_dir`.
    pub smtp_url: Option<String>,
    /// Extra CA certificates (PEM) for the SMTP server's TLS certificate.
    pub smtp_ca_file: Option<std::path::PathBuf>,
    pub mail_dir: std::path::PathBuf,
}

/// The Stripe keys of a local platform (the emulator accepts any `sk_` key). Register the
/// gateway's webhook URL with [`LOCAL_STRIPE_WEBHOOK_SECRET`].
pub const LOCAL_STRIPE_SECRET_KEY: &str = "sk_test_souk_local";
pub const LOCAL_STRIPE_WEBHOOK_SECRET: &str = "whsec_souk_local";
/// The publishable key the storefront gives the emulator's stand-in Stripe.js.
pub const LOCAL_STRIPE_PUBLISHABLE_KEY: &str = "pk_test_souk_local";
/// Where charges go without an emulator: nothing listens there, so they answer 503.
const NO_STRIPE: &str = "http://127.0.0.1:9/";

/// The Stripe account the payment service uses.
#[derive(Clone, Debug)]
pub struct StripeSettings {
    pub secret_key: String,
    /// The signing secret of the webhook endpoint (`/api/v1/payments/webhook`).
    pub webhook_secret: String,
    /// None: Stripe itself; else an emulator (or a proxy) at this URL.
    pub api_base: Option<String>,
}

impl StripeSettings {
    /// An emulator at `url`, with the local keys (register its webhook with
    /// [`LOCAL_STRIPE_WEBHOOK_SECRET`]).
    pub fn local(url: String) -> Self {
        Self {
            secret_key: LOCAL_STRIPE_SECRET_KEY.to_owned(),
            webhook_secret: LOCAL_STRIPE_WEBHOOK_SECRET.to_owned(),
            api_base: Some(url),
        }
    }

    /// Stripe.js for the storefront: an emulator serves its stand-in at `/js.stripe.com/v3/`;
    /// Stripe itself needs `SOUK_STRIPE_PUBLISHABLE_KEY` (else the storefront cannot pay).
    pub fn stripe_js(&self) -> Result<Option<souk_gateway::StripeJs>, settings::ConfigError> {
        let Some(base) = &self.api_base else {
            return souk_gateway::stripe_js_from_env();
        };
        let publishable_key = settings::optional(env::STRIPE_PUBLISHABLE_KEY)?
            .unwrap_or_else(|| LOCAL_STRIPE_PUBLISHABLE_KEY.to_owned());
        Ok(Some(souk_gateway::StripeJs {
            url: format!("{}/js.stripe.com/v3/", base.trim_end_matches('/')),
            publishable_key,
        }))
    }
}

pub struct RunningPlatform {
    pub gateway_url: String,
    /// Base URL of each service, by name (for tests that call a service directly).
    pub urls: HashMap<&'static str, String>,
    /// Base URL of each service's ops listener (`/metrics`, detailed `/readyz`).
    pub ops_urls: HashMap<&'static str, String>,
    pub config: PlatformConfig,
    stops: HashMap<&'static str, watch::Sender<bool>>,
    tasks: HashMap<&'static str, JoinHandle<anyhow::Result<()>>>,
}

impl PlatformOptions {
    pub fn database_url(&self, service: &str) -> anyhow::Result<String> {
        db::with_database(
            &self.server_url,
            &format!("{}_{service}", self.database_prefix),
        )
    }
}

fn local_config(
    opts: &PlatformOptions,
    urls: &HashMap<&'static str, String>,
) -> anyhow::Result<PlatformConfig> {
    let secret = opts.internal_secret.clone();
    let db = |s: &str| -> anyhow::Result<Database> {
        Ok(Database {
            url: opts.database_url(s)?,
            max_connections: 10,
        })
    };
    let stripe_js = match &opts.stripe {
        Some(stripe) => stripe.stripe_js()?,
        None => None,
    };
    let stripe = opts.stripe.clone().unwrap_or_else(|| StripeSettings {
        api_base: Some(NO_STRIPE.to_owned()),
        ..StripeSettings::local(String::new())
    });
    Ok(PlatformConfig {
        user: souk_user::Config {
            database: db("user")?,
            internal_secret: secret.clone(),
            jwt_private_key_pem: opts.jwt_private_key_pem.clone(),
            access_ttl_secs: 900,
            refresh_ttl_days: 30,
            admin: opts.admin.clone(),
            login_limits: souk_user::LoginLimits::default(),
            // As `souk serve user` reads them: scripts/bench signs up 1,000 shoppers from one
            // address.
            registration_limits: souk_user::RegistrationLimits::from_env()?,
        },
        product: souk_product::Config {
            database: db("product")?,
            internal_secret: secret.clone(),
            currency: "usd".to_owned(),
            reservation_ttl: std::time::Duration::from_secs(900),
            reservation_sweep_interval: std::time::Duration::from_secs(30),
            // Same variable and default as `souk serve product`; benchmarks compare both.
            catalog_cache: souk_common::settings::parsed("SOUK_CATALOG_CACHE", true)?,
        },
        cart: souk_cart::Config {
            database: db("cart")?,
            internal_secret: secret.clone(),
            product_url: urls["product"].clone(),
            order_url: urls["order"].clone(),
            currency: "usd".to_owned(),
        },
        order: souk_order::Config {
            database: db("order")?,
            internal_secret: secret.clone(),
            user_url: urls["user"].clone(),
            product_url: urls["product"].clone(),
            cart_url: urls["cart"].clone(),
            payment_url: urls["payment"].clone(),
            recovery_interval: std::time::Duration::from_secs(10),
            lease: std::time::Duration::from_secs(60),
            payment_window: std::time::Duration::from_secs(souk_order::DEFAULT_PAYMENT_WINDOW_SECS),
            payment_poll: std::time::Duration::from_secs(2),
            fault: None,
        },
        payment: souk_payment::Config {
            database: db("payment")?,
            internal_secret: secret.clone(),
            stripe_secret_key: stripe.secret_key,
            stripe_webhook_secret: stripe.webhook_secret,
            stripe_api_base: stripe.api_base,
            order_url: urls["order"].clone(),
            smtp_url: opts.smtp_url.clone(),
            smtp_ca_file: opts.smtp_ca_file.clone(),
            mail_dir: opts.mail_dir.clone(),
            mail_from: souk_payment::DEFAULT_MAIL_FROM.to_owned(),
            outbox_poll_interval: std::time::Duration::from_secs(1),
        },
        gateway: souk_gateway::Config {
            internal_secret: secret,
            upstreams: souk_gateway::Upstreams {
                user: urls["user"].clone(),
                product: urls["product"].clone(),
                cart: urls["cart"].clone(),
                order: urls["order"].clone(),
                payment: urls["payment"].clone(),
            },
            request_timeout: std::time::Duration::from_secs(10),
            payments_timeout: std::time::Duration::from_secs(30),
            // Same variables and defaults as `souk serve gateway`; benchmarks raise them.
            rate_limit_per_sec: souk_common::settings::parsed("SOUK_RATE_LIMIT_PER_SEC", 50.0)?,
            rate_limit_burst: souk_common::settings::parsed("SOUK_RATE_LIMIT_BURST", 100.0)?,
            session_cache_ttl: std::time::Duration::from_secs(10),
            catalog_cache_ttl: souk_gateway::catalog_cache_ttl_from_env()?,
            trusted_proxies: souk_gateway::trusted_proxies_from_env()?,
            stripe_js,
            openapi: souk_gateway::OpenApiJson::new(crate::openapi::DOCUMENT),
        },
        connections: server::ConnectionLimits::from_env()?,
    })
}

/// Creates and migrates each service's database.
pub async fn prepare_databases(opts: &PlatformOptions) -> anyhow::Result<()> {
    for service in SERVICES.into_iter().filter(|s| has_database(s)) {
        let url = opts.database_url(service)?;
        db::create_if_missing(&url)
            .await
            .with_context(|| format!("creating the {service} database"))?;
        if let Some(m) = migrator(service) {
            let pool = db::connect(&url, 1).await?;
            db::migrate(&pool, m)
                .await
                .with_context(|| format!("migrating the {service} database"))?;
            pool.close().await;
        }
    }
    Ok(())
}

impl RunningPlatform {
    /// Binds every port, prepares the databases, lets `adjust` change the configuration, then
    /// starts the services in dependency order. Returns once all are serving.
    pub async fn start(
        opts: PlatformOptions,
        adjust: impl FnOnce(&mut PlatformConfig),
    ) -> anyhow::Result<Self> {
        let mut listeners: HashMap<&'static str, (TcpListener, TcpListener)> = HashMap::new();
        let mut urls = HashMap::new();
        let mut ops_urls = HashMap::new();
        for service in SERVICES {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let (addr, ops_addr) = if service == "gateway" {
                (opts.gateway_addr, opts.gateway_ops_addr)
            } else {
                (any, any)
            };
            let listener = server::bind(addr).await?;
            let ops = server::bind(ops_addr).await?;
            urls.insert(service, format!("http://{}", listener.local_addr()?));
            ops_urls.insert(service, format!("http://{}", ops.local_addr()?));
            listeners.insert(service, (listener, ops));
        }
        prepare_databases(&opts).await?;
        let mut config = local_config(&opts, &urls)?;
        adjust(&mut config);

        let mut platform = RunningPlatform {
            gateway_url: urls["gateway"].clone(),
            urls,
            ops_urls,
            config: config.clone(),
            stops: HashMap::new(),
            tasks: HashMap::new(),
        };
        for service in SERVICES {
            let app = build_app(service, &config)
                .await
                .with_context(|| format!("starting the {service} service"))?;
            let (listener, ops) = listeners.remove(service).expect("bound above");
            let (stop, stopped) = watch::channel(false);
            let limits = config.connections.clone();
            let task = tokio::spawn(async move {
                let stopped_ops = stopped.clone();
                let (main, ops) = tokio::join!(
                    server::serve(listener, app.clone(), &limits, stop_signal(stopped)),
                    server::serve_ops(ops, app, &limits, stop_signal(stopped_ops)),
                );
                main.and(ops)
            });
            platform.stops.insert(service, stop);
            platform.tasks.insert(service, task);
        }
        Ok(platform)
    }

    /// Stops one service gracefully (tests use it to take a dependency down).
    pub async fn stop(&mut self, service: &str) {
        if let Some(stop) = self.stops.remove(service) {
            let _ = stop.send(true);
        }
        if let Some(task) = self.tasks.remove(service) {
            let _ = task.await;
        }
    }

    /// Waits until any service stops (it should not), or until `shutdown` resolves.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let any_exit = futures_any(self.tasks.drain().collect());
        tokio::select! {
            (service, result) = any_exit => {
                let result = result.map_err(anyhow::Error::from).and_then(|r| r);
                anyhow::bail!("the {service} service stopped: {result:?}");
            }
            _ = shutdown => {}
        }
        for stop in self.stops.values() {
            let _ = stop.send(true);
        }
        Ok(())
    }
}

impl RunningPlatform {
    /// Tells every service to stop; in-flight requests finish on their own.
    pub fn shutdown_now(&mut self) {
        for stop in self.stops.values() {
            let _ = stop.send(true);
        }
    }
}

impl Drop for RunningPlatform {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

async fn futures_any(
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
) -> (
    &'static str,
    Result<anyhow::Result<()>, tokio::task::JoinError>,
) {
    let (names, handles): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
    let (result, index, _) = futures::future::select_all(handles).await;
    (names[index], result)
}

async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Builds one service's app from its part of the configuration.
pub async fn build_app(service: &str, config: &PlatformConfig) -> anyhow::Result<axum::Router> {
    match service {
        "user" => souk_user::app(config.user.clone()).await,
        "product" => souk_product::app(config.product.clone()).await,
        "cart" => souk_cart::app(config.cart.clone()).await,
        "order" => souk_order::app(config.order.clone()).await,
        "payment" => souk_payment::app(config.payment.clone()).await,
        "gateway" => souk_gateway::app(config.gateway.clone()).await,
        other => anyhow::bail!("unknown service {other:?}; one of {}", SERVICES.join(", ")),
    }
}
