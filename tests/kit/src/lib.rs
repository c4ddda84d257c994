//! Souk's test support, used as a dev-dependency only, so the production binary carries none
//! of it: the platform harness ([`TestPlatform`], in-memory [`Trace`]s), the SMTP sink and the
//! Stripe emulator for tests, one way to poll until something holds ([`eventually`]) and one
//! way to call a service directly as a sibling service or the gateway would ([`Internal`]).

mod eventually;
mod internal;
mod platform;
mod smtp;
mod traces;

pub use eventually::eventually;
pub use internal::{Internal, Payload};
pub use platform::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Replica, TEST_INTERNAL_SECRET, TestDatabases, TestPlatform,
    test_signing_key_pem,
};
pub use smtp::{SinkTls, SmtpSink};
pub use souk::local_stripe::emulator::StripeEmulator;
pub use traces::{FinishedSpan, Trace};

/// The server tests create their databases on (`SOUK_TEST_DATABASE_URL`, default local trust auth).
pub fn test_server_url() -> String {
    std::env::var("SOUK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Stripe emulator on a free port, with the system's interpreter (`PYTHON`, else
/// `python3`); fails, saying what to install, without its Python packages.
pub fn start_stripe_emulator() -> anyhow::Result<StripeEmulator> {
    StripeEmulator::start_in(&souk::local_stripe::emulator::python())
}
