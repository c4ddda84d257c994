//! Test support shared by every crate. The per-test databases themselves are made and dropped
//! by the platform harness (`souk::testing`).

/// The server tests create their databases on (`SOUK_TEST_DATABASE_URL`, default local trust auth).
pub fn test_server_url() -> String {
    std::env::var("SOUK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}
