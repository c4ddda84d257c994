//! Tracing set-up and request ids.

use souk_contract::env;
use std::io::IsTerminal;

use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_subscriber::EnvFilter;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber once; later calls (tests, in-process services) do nothing.
/// Logs are JSON, one object per line, unless stdout is a terminal (see [`LogFormat::choose`]).
pub fn init() {
    init_with_default("info,sqlx=warn");
}

/// Like `init`, with another filter when `RUST_LOG` is unset (tests default to quiet).
pub fn init_with_default(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let terminal = std::io::stdout().is_terminal();
    let format = LogFormat::choose(std::env::var(env::LOG_FORMAT).ok().as_deref(), terminal);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // Colours only for a person at a terminal, never into a file or a log collector.
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `SOUK_LOG_FORMAT` (`json` or `text`) when set; otherwise text for a terminal and JSON
    /// for anything else (a container's stdout, a pipe), so pods log JSON by default.
    pub fn choose(setting: Option<&str>, stdout_is_terminal: bool) -> Self {
        match setting {
            Some("json") => Self::Json,
            Some("text") => Self::Text,
            _ if stdout_is_terminal => Self::Text,
            _ => Self::Json,
        }
    }
}

/// UUID v7 request ids: unique and sortable by time.
#[derive(Clone, Copy, Default)]
pub struct MakeRequestUuid;

impl MakeRequestId for MakeRequestUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Uuid::now_v7().to_string();
        Some(RequestId::new(id.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn json_unless_a_terminal_or_asked_otherwise() {
        assert_eq!(LogFormat::choose(None, false), LogFormat::Json);
        assert_eq!(LogFormat::choose(None, true), LogFormat::Text);
        assert_eq!(LogFormat::choose(Some("json"), true), LogFormat::Json);
        assert_eq!(LogFormat::choose(Some("text"), false), LogFormat::Text);
        assert_eq!(LogFormat::choose(Some("other"), false), LogFormat::Json);
    }
}
