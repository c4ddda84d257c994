//! The test harness: the whole platform in-process on free ports, against fresh databases
//! that are dropped when the test ends.

#![allow(
    clippy::print_stderr,
    reason = "test support: the test's output is where a failing test's causes show"
)]

use std::net::SocketAddr;

use souk::platform::{
    LOCAL_STRIPE_WEBHOOK_SECRET, PlatformConfig, PlatformOptions, RunningPlatform, StripeSettings,
};

use crate::{SmtpSink, StripeEmulator, test_server_url, traces};

/// The internal secret of every test platform: what [`crate::Internal`] signs with.
pub const TEST_INTERNAL_SECRET: &str = "test-internal-secret-test-internal-secret";

pub struct TestPlatform {
    pub platform: RunningPlatform,
    pub prefix: String,
    /// With `start_shop`: the Stripe emulator (its webhooks go to this platform's gateway).
    pub stripe: Option<StripeEmulator>,
    /// With `start_shop`: the SMTP server the confirmation e-mails go to.
    pub smtp: Option<SmtpSink>,
    /// Where e-mails are written when there is no SMTP sink.
    pub mail_dir: std::path::PathBuf,
}

impl TestPlatform {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts with databases `souk_test_<random>_<service>`; `adjust` tunes the configuration.
    /// No Stripe (charges answer 503) and e-mails go to files: use `start_shop` to pay.
    pub async fn start_with(adjust: impl FnOnce(&mut PlatformConfig)) -> anyhow::Result<Self> {
        Self::launch(None, adjust).await
    }

    /// Also starts a Stripe emulator (webhooks registered to this gateway, signed with
    /// `LOCAL_STRIPE_WEBHOOK_SECRET`) and an SMTP sink (`mail()`). Needs Python with
    /// tests/support/requirements.txt; fails, saying so, without it.
    pub async fn start_shop() -> anyhow::Result<Self> {
        Self::start_shop_with(|_| {}).await
    }

    pub async fn start_shop_with(adjust: impl FnOnce(&mut PlatformConfig)) -> anyhow::Result<Self> {
        let stripe = crate::start_stripe_emulator()?;
        let smtp = SmtpSink::start()?;
        Self::launch(Some((stripe, smtp)), adjust).await
    }

    /// Messages delivered so far (raw RFC 5322 text): the SMTP sink's, else the `.eml` files.
    pub fn mail(&self) -> Vec<String> {
        if let Some(smtp) = &self.smtp {
            return smtp.messages();
        }
        let Ok(entries) = std::fs::read_dir(&self.mail_dir) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    async fn launch(
        shop: Option<(StripeEmulator, SmtpSink)>,
        adjust: impl FnOnce(&mut PlatformConfig),
    ) -> anyhow::Result<Self> {
        traces::init("warn,sqlx=error");
        let prefix = format!("souk_test_{}", uuid::Uuid::new_v4().simple());
        let opts = PlatformOptions {
            server_url: test_server_url(),
            database_prefix: prefix.clone(),
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            gateway_ops_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            internal_secret: TEST_INTERNAL_SECRET.to_owned(),
            jwt_private_key_pem: test_signing_key_pem().to_owned(),
            admin: Some(souk_user::AdminSeed {
                email: ADMIN_EMAIL.into(),
                password: ADMIN_PASSWORD.into(),
            }),
            stripe: shop
                .as_ref()
                .map(|(stripe, _)| StripeSettings::local(stripe.url())),
            smtp_url: shop.as_ref().map(|(_, smtp)| smtp.url()),
            smtp_ca_file: None,
            mail_dir: std::env::temp_dir().join(format!("{prefix}_mail")),
        };
        let mail_dir = opts.mail_dir.clone();
        // Databases are dropped on every exit path, even if start-up fails half-way.
        let guard = TestDatabases::new(&prefix);
        // Small pools: two tests run at once per core and PostgreSQL allows 100 connections.
        let platform = RunningPlatform::start(opts, |c| {
            c.user.database.max_connections = TEST_POOL_SIZE;
            c.product.database.max_connections = TEST_POOL_SIZE;
            c.cart.database.max_connections = TEST_POOL_SIZE;
            c.order.database.max_connections = TEST_POOL_SIZE;
            c.payment.database.max_connections = TEST_POOL_SIZE;
            // Every test registers its shoppers from 127.0.0.1.
            c.user.registration_limits.per_address = i32::MAX;
            adjust(c);
        })
        .await?;
        std::mem::forget(guard);
        let (stripe, smtp) = shop.unzip();
        let platform = Self {
            platform,
            prefix,
            stripe,
            smtp,
            mail_dir,
        };
        if let Some(stripe) = &platform.stripe {
            let webhook = format!("{}/api/v1/payments/webhook", platform.gateway());
            stripe
                .register_webhook(&webhook, LOCAL_STRIPE_WEBHOOK_SECRET)
                .await?;
        }
        Ok(platform)
    }

    pub fn gateway(&self) -> &str {
        &self.platform.gateway_url
    }

    pub fn url(&self, service: &str) -> &str {
        &self.platform.urls[service]
    }

    /// The service's ops listener (`/metrics`, detailed `/readyz`).
    pub fn ops_url(&self, service: &str) -> &str {
        &self.platform.ops_urls[service]
    }

    /// One more instance of `service` on the same databases and configuration, on a port of
    /// its own (as a second replica behind a load balancer would run); stops when dropped.
    pub async fn start_replica(&self, service: &str) -> anyhow::Result<Replica> {
        let app = souk::platform::build_app(service, &self.platform.config).await?;
        let listener = souk_common::server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let limits = self.platform.config.connections.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = souk_common::server::serve(listener, app, &limits, shutdown).await {
                eprintln!("replica stopped: {e:#}");
            }
        });
        Ok(Replica { url, stop })
    }

    pub fn database_url(&self, service: &str) -> String {
        souk_common::db::with_database(&test_server_url(), &format!("{}_{service}", self.prefix))
            .expect("test server URL is valid")
    }
}

/// A second instance of a service (`TestPlatform::start_replica`).
pub struct Replica {
    /// Its base URL, to call it directly.
    pub url: String,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Connections per service pool in tests: 5 services x 4 = 20 per running test.
const TEST_POOL_SIZE: u32 = 4;

pub const ADMIN_EMAIL: &str = "admin@souk.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// One key for the whole test run: generating is cheap, but a fixed key keeps failures
/// reproducible within a run.
pub fn test_signing_key_pem() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(souk_user::tokens::generate_private_key_pem)
}

/// Drops the databases `<prefix>_<service>` of every service when it goes out of scope, however
/// the test ends (a platform started by `souk up` in a child process, say).
pub struct TestDatabases {
    prefix: String,
}

impl TestDatabases {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn drop_all(prefix: &str) {
        let (server, prefix) = (test_server_url(), prefix.to_owned());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for service in souk::SERVICES.into_iter().filter(|s| souk::has_database(s)) {
                    if let Ok(url) =
                        souk_common::db::with_database(&server, &format!("{prefix}_{service}"))
                        && let Err(e) = souk_common::db::drop_database(&url).await
                    {
                        eprintln!("could not drop test database {url}: {e}");
                    }
                }
            });
        })
        .join();
    }
}

impl Drop for TestDatabases {
    fn drop(&mut self) {
        Self::drop_all(&self.prefix);
    }
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        // Stop the services first so their pools let go of the databases.
        self.platform.shutdown_now();
        TestDatabases::drop_all(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.mail_dir);
    }
}
