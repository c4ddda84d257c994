//! Test support shared by every crate: a fresh, uniquely named database per test, dropped after.

/// The server tests create their databases on (`SOUK_TEST_DATABASE_URL`, default local trust auth).
pub fn test_server_url() -> String {
    std::env::var("SOUK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test. Dropping it drops the database (closing connections).
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl TestDatabase {
    /// Creates `souk_test_<label>_<uuid>` on the test server.
    pub async fn create(label: &str) -> anyhow::Result<Self> {
        let name = format!("souk_test_{label}_{}", uuid::Uuid::new_v4().simple());
        let url = crate::db::with_database(&test_server_url(), &name)?;
        crate::db::create_if_missing(&url).await?;
        Ok(Self { url, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop runs outside async context; a short-lived runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt
                && let Err(e) = rt.block_on(crate::db::drop_database(&url))
            {
                eprintln!("could not drop test database {url}: {e}");
            }
        })
        .join();
    }
}
