//! The test harness: the whole platform in-process on free ports, against fresh databases
//! that are dropped when the test ends.

use std::net::SocketAddr;

use souk_common::testing::test_server_url;

use crate::platform::{PlatformConfig, PlatformOptions, RunningPlatform};

pub const TEST_INTERNAL_SECRET: &str = "test-internal-secret-test-internal-secret";

pub struct TestPlatform {
    pub platform: RunningPlatform,
    pub prefix: String,
}

impl TestPlatform {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts with databases `souk_test_<random>_<service>`; `adjust` tunes the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut PlatformConfig)) -> anyhow::Result<Self> {
        souk_common::telemetry::init();
        let prefix = format!("souk_test_{}", uuid::Uuid::new_v4().simple());
        let opts = PlatformOptions {
            server_url: test_server_url(),
            database_prefix: prefix.clone(),
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            internal_secret: TEST_INTERNAL_SECRET.to_owned(),
            jwt_private_key_pem: test_signing_key_pem().to_owned(),
            admin: Some(souk_user::AdminSeed {
                email: ADMIN_EMAIL.into(),
                password: ADMIN_PASSWORD.into(),
            }),
        };
        // Databases are dropped on every exit path, even if start-up fails half-way.
        let guard = DropDatabases {
            server: opts.server_url.clone(),
            prefix: prefix.clone(),
        };
        let platform = RunningPlatform::start(opts, adjust).await?;
        std::mem::forget(guard);
        Ok(Self { platform, prefix })
    }

    pub fn gateway(&self) -> &str {
        &self.platform.gateway_url
    }

    pub fn url(&self, service: &str) -> &str {
        &self.platform.urls[service]
    }

    pub fn database_url(&self, service: &str) -> String {
        souk_common::db::with_database(&test_server_url(), &format!("{}_{service}", self.prefix))
            .expect("test server URL is valid")
    }
}

pub const ADMIN_EMAIL: &str = "admin@souk.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// One key for the whole test run: generating is cheap, but a fixed key keeps failures
/// reproducible within a run.
pub fn test_signing_key_pem() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(souk_user::tokens::generate_private_key_pem)
}

struct DropDatabases {
    server: String,
    prefix: String,
}

impl DropDatabases {
    fn drop_all(server: &str, prefix: &str) {
        let (server, prefix) = (server.to_owned(), prefix.to_owned());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for service in crate::SERVICES
                    .into_iter()
                    .filter(|s| crate::has_database(s))
                {
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

impl Drop for DropDatabases {
    fn drop(&mut self) {
        Self::drop_all(&self.server, &self.prefix);
    }
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        // Stop the services first so their pools let go of the databases.
        self.platform.shutdown_now();
        DropDatabases::drop_all(&test_server_url(), &self.prefix);
    }
}
