//! The storefront: one HTML page (hash routing, so no page path can collide with the API) and its
//! ES modules, embedded at build time from `web/`. Assets live under `/assets/<version>/`, where
//! the version is a hash of every file (build.rs), so they are cached forever; the page itself is
//! `no-cache` and carries a strict Content-Security-Policy (no inline script, no eval; Stripe's
//! origins only when configured).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use souk_common::ApiError;

use crate::StripeJs;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// The page's URL path prefix for assets of this build.
pub fn assets_base() -> String {
    format!("/assets/{}", assets::VERSION)
}

/// Stripe.js's own origin: its script, its frames and its API have origins of their own.
const STRIPE_JS_ORIGIN: &str = "https://js.stripe.com";

struct Storefront {
    index: String,
    csp: HeaderValue,
    config: String,
}

pub fn router<S: Clone + Send + Sync + 'static>(stripe: Option<&StripeJs>) -> Router<S> {
    let index = std::str::from_utf8(file("index.html").expect("web/index.html is embedded"))
        .expect("index.html is UTF-8")
        .replace("__ASSETS__", &assets_base());
    let config = serde_json::json!({
        "stripe_js_url": stripe.map(|s| s.url.as_str()),
        "stripe_publishable_key": stripe.map(|s| s.publishable_key.as_str()),
    })
    .to_string();
    let state = Arc::new(Storefront {
        index,
        csp: HeaderValue::from_str(&content_security_policy(stripe))
            .expect("the policy is visible ASCII"),
        config,
    });
    Router::new()
        .route("/", get(page))
        .route("/storefront/config.json", get(config_json))
        .route("/assets/{version}/{name}", get(asset))
        .route("/images/demo/{file}", get(crate::demo_images::serve))
        .with_state(state)
}

/// `default-src 'self'`; Stripe.js (when configured) may load its script, open its frames and
/// call its API. Images may come from any https origin (a product's `image_url`).
pub fn content_security_policy(stripe: Option<&StripeJs>) -> String {
    let origin = stripe
        .and_then(|s| url::Url::parse(&s.url).ok())
        .map(|u| u.origin().ascii_serialization());
    let (script, frame, connect) = match origin.as_deref() {
        Some(STRIPE_JS_ORIGIN) => (
            STRIPE_JS_ORIGIN.to_owned(),
            format!("{STRIPE_JS_ORIGIN} https://hooks.stripe.com"),
            "https://api.stripe.com".to_owned(),
        ),
        // An emulator serves its stand-in script and its API from one origin.
        Some(other) => (other.to_owned(), other.to_owned(), other.to_owned()),
        None => (String::new(), "'none'".to_owned(), String::new()),
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' {script}; connect-src 'self' {connect}; \
         frame-src {frame}; img-src 'self' https:; style-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    policy.replace("  ", " ").replace(" ;", ";")
}

fn file(name: &str) -> Option<&'static [u8]> {
    assets::FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn nosniff() -> (HeaderName, HeaderValue) {
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

async fn page(State(web): State<Arc<Storefront>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, web.csp.clone()),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("strict-origin-when-cross-origin"),
            ),
            nosniff(),
        ],
        web.index.clone(),
    )
        .into_response()
}

async fn config_json(State(web): State<Arc<Storefront>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            nosniff(),
        ],
        web.config.clone(),
    )
        .into_response()
}

async fn asset(Path((version, name)): Path<(String, String)>) -> Response {
    // Only this build's version: an old page asking for old modules gets a clean 404 rather
    // than new modules it was not written against, cached forever under the old name.
    let found = (version == assets::VERSION && name != "index.html")
        .then(|| file(&name))
        .flatten();
    let Some(bytes) = found else {
        return ApiError::not_found("no such asset").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&name)),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            nosniff(),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(url: &str) -> StripeJs {
        StripeJs {
            url: url.to_owned(),
            publishable_key: "pk_test_x".to_owned(),
        }
    }

    #[test]
    fn policy_allows_only_the_configured_stripe_origins() {
        let none = content_security_policy(None);
        assert!(none.contains("script-src 'self';"), "{none}");
        assert!(none.contains("frame-src 'none';"), "{none}");
        assert!(!none.contains("unsafe"), "{none}");

        let real = content_security_policy(Some(&stripe("https://js.stripe.com/v3/")));
        assert!(
            real.contains("script-src 'self' https://js.stripe.com;"),
            "{real}"
        );
        assert!(
            real.contains("connect-src 'self' https://api.stripe.com;"),
            "{real}"
        );
        assert!(real.contains("frame-src https://js.stripe.com https://hooks.stripe.com;"));

        let local =
            content_security_policy(Some(&stripe("http://127.0.0.1:4242/js.stripe.com/v3/")));
        assert!(
            local.contains("script-src 'self' http://127.0.0.1:4242;"),
            "{local}"
        );
        assert!(
            local.contains("connect-src 'self' http://127.0.0.1:4242;"),
            "{local}"
        );
    }

    #[test]
    fn every_module_the_page_names_is_embedded() {
        let page = std::str::from_utf8(file("index.html").unwrap()).unwrap();
        for (name, bytes) in assets::FILES {
            assert!(!bytes.is_empty(), "{name} is empty");
        }
        for part in page.split("__ASSETS__/").skip(1) {
            let name: String = part.chars().take_while(|c| *c != '"').collect();
            assert!(
                file(&name).is_some(),
                "index.html names {name}, which is not in web/"
            );
        }
    }
}
