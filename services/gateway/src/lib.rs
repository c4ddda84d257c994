//! The gateway: the only public entry. Routes `/api/v1/...` to the owning service, verifies
//! access tokens, vouches for the caller to services, limits rates, bounds time and size.

mod openapi;
pub use openapi::openapi;
mod catalog_cache;
pub mod client_addr;
pub mod demo_images;
mod docs;
mod keys;
mod proxy;
mod ratelimit;
pub mod routes;
mod sessions;
mod web;

use souk_contract::env;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use souk_common::client::{ServiceClient, http_client};
use souk_common::ops::ReadyCheck;
use souk_common::settings::{self, ConfigError};
use souk_common::{ApiError, InternalAuth, server};

use souk_contract::Service;

#[derive(Clone, Debug)]
pub struct Upstreams {
    pub user: String,
    pub product: String,
    pub cart: String,
    pub order: String,
    pub payment: String,
}

impl Upstreams {
    /// The base URL of a backend; none for the gateway itself.
    pub fn base(&self, service: Service) -> Option<&str> {
        match service {
            Service::User => Some(&self.user),
            Service::Product => Some(&self.product),
            Service::Cart => Some(&self.cart),
            Service::Order => Some(&self.order),
            Service::Payment => Some(&self.payment),
            Service::Gateway => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub internal_secret: String,
    pub upstreams: Upstreams,
    pub request_timeout: Duration,
    pub payments_timeout: Duration,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: f64,
    pub session_cache_ttl: Duration,
    /// How long an anonymous catalog read is answered from the gateway's memory; zero: never
    /// (see `catalog_cache`).
    pub catalog_cache_ttl: Duration,
    /// Networks of the proxies in front of the gateway (the ingress controller). A request
    /// from one of them gets its client address from `X-Forwarded-For`; see `client_addr`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Stripe.js for the storefront's checkout; None: the storefront says payments are off.
    pub stripe_js: Option<StripeJs>,
    /// What `/openapi.json` serves (and `/docs` shows).
    pub openapi: OpenApiJson,
}

/// The public API's OpenAPI document as JSON, encoded once. The runner generates it from the
/// services' code (`souk::openapi`), which the gateway does not depend on.
#[derive(Clone)]
pub struct OpenApiJson(Bytes);

impl OpenApiJson {
    pub fn new(json: impl Into<Bytes>) -> Self {
        Self(json.into())
    }
}

impl std::fmt::Debug for OpenApiJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenApiJson({} bytes)", self.0.len())
    }
}

/// Where the storefront loads Stripe.js from, and the publishable key it gives it.
#[derive(Clone, Debug)]
pub struct StripeJs {
    pub url: String,
    pub publishable_key: String,
}

/// Stripe's own script; an emulator serves a stand-in at `<its URL>/js.stripe.com/v3/`.
pub const STRIPE_JS_URL: &str = "https://js.stripe.com/v3/";

/// `SOUK_STRIPE_PUBLISHABLE_KEY` (`pk_…`) and `SOUK_STRIPE_JS_URL` (default Stripe's own).
pub fn stripe_js_from_env() -> Result<Option<StripeJs>, ConfigError> {
    const KEY: &str = env::STRIPE_PUBLISHABLE_KEY;
    let Some(publishable_key) = settings::optional(KEY)? else {
        return Ok(None);
    };
    if !publishable_key.starts_with("pk_") {
        return Err(ConfigError::new(KEY, "must be a publishable key (pk_...)"));
    }
    let url = match settings::optional(env::STRIPE_JS_URL)? {
        None => STRIPE_JS_URL.to_owned(),
        Some(_) => settings::base_url(env::STRIPE_JS_URL)? + "/",
    };
    Ok(Some(StripeJs {
        url,
        publishable_key,
    }))
}

impl Config {
    /// The settings from the environment; `openapi` is the document to serve.
    pub fn from_env(openapi: OpenApiJson) -> Result<Self, ConfigError> {
        Ok(Self {
            internal_secret: settings::internal_secret()?,
            upstreams: Upstreams {
                user: settings::base_url(env::USER_URL)?,
                product: settings::base_url(env::PRODUCT_URL)?,
                cart: settings::base_url(env::CART_URL)?,
                order: settings::base_url(env::ORDER_URL)?,
                payment: settings::base_url(env::PAYMENT_URL)?,
            },
            request_timeout: Duration::from_millis(settings::parsed(
                "SOUK_UPSTREAM_TIMEOUT_MS",
                10_000,
            )?),
            payments_timeout: Duration::from_millis(settings::parsed(
                "SOUK_PAYMENTS_TIMEOUT_MS",
                30_000,
            )?),
            rate_limit_per_sec: settings::parsed("SOUK_RATE_LIMIT_PER_SEC", 50.0)?,
            rate_limit_burst: settings::parsed("SOUK_RATE_LIMIT_BURST", 100.0)?,
            session_cache_ttl: Duration::from_secs(settings::parsed(
                "SOUK_SESSION_CACHE_SECS",
                10,
            )?),
            catalog_cache_ttl: catalog_cache_ttl_from_env()?,
            trusted_proxies: trusted_proxies_from_env()?,
            stripe_js: stripe_js_from_env()?,
            openapi,
        })
    }
}

/// `SOUK_GATEWAY_CACHE_TTL_MS`: 0 turns the gateway's catalog cache off; at most 900, so a
/// change is still visible within the catalog's 1 s bound. Also read by `souk up`.
pub fn catalog_cache_ttl_from_env() -> Result<Duration, ConfigError> {
    const VAR: &str = "SOUK_GATEWAY_CACHE_TTL_MS";
    let ttl = Duration::from_millis(settings::parsed(
        VAR,
        catalog_cache::DEFAULT_TTL.as_millis() as u64,
    )?);
    if ttl > catalog_cache::MAX_TTL {
        return Err(ConfigError::new(
            VAR,
            format!(
                "must be at most {} (the catalog's freshness bound is 1 s)",
                catalog_cache::MAX_TTL.as_millis()
            ),
        ));
    }
    Ok(ttl)
}

/// `SOUK_TRUSTED_PROXIES`: comma-separated networks (`10.0.0.0/8`) or addresses. Also read by
/// `souk up`, so both runners trust the same proxies.
pub fn trusted_proxies_from_env() -> Result<Vec<ipnet::IpNet>, ConfigError> {
    const VAR: &str = env::TRUSTED_PROXIES;
    if settings::optional("SOUK_TRUST_FORWARDED_FOR")?.is_some() {
        return Err(ConfigError::new(
            "SOUK_TRUST_FORWARDED_FOR",
            "is no longer read: list the proxies' networks in SOUK_TRUSTED_PROXIES instead",
        ));
    }
    let Some(raw) = settings::optional(VAR)? else {
        return Ok(Vec::new());
    };
    client_addr::parse_networks(&raw).map_err(|e| ConfigError::new(VAR, e))
}

/// Shared by every request through one `Arc`: axum clones the state for each request, and
/// cloning this struct field by field (the HTTP client alone holds several `Arc`s) showed up in
/// the gateway's profile (`scripts/bench`, BENCHMARKS.md).
pub type AppState = Arc<Shared>;

pub struct Shared {
    config: Arc<Config>,
    internal: InternalAuth,
    http: Client<HttpConnector, Full<Bytes>>,
    keys: Arc<keys::KeyStore>,
    sessions: Arc<sessions::Sessions>,
    limiter: Arc<ratelimit::RateLimiter>,
    catalog_cache: catalog_cache::CatalogCache,
}

pub async fn app(config: Config) -> anyhow::Result<Router> {
    let internal = InternalAuth::new(&config.internal_secret);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    let http = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(souk_common::client::POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(512)
        .build(connector);
    let user_client = ServiceClient::new(
        http_client(Duration::from_secs(3)),
        config.upstreams.user.clone(),
        internal.clone(),
        "gateway",
        "user",
    );
    let keys = Arc::new(keys::KeyStore::new(user_client.clone()));
    if keys.refresh().await.is_err() {
        tracing::warn!("verification keys not fetched yet; will retry on the first token");
    }
    let state = Arc::new(Shared {
        sessions: Arc::new(sessions::Sessions::new(
            user_client,
            config.session_cache_ttl,
        )),
        limiter: Arc::new(ratelimit::RateLimiter::new(
            config.rate_limit_per_sec,
            config.rate_limit_burst,
        )),
        catalog_cache: catalog_cache::CatalogCache::new(config.catalog_cache_ttl),
        config: Arc::new(config),
        internal,
        http,
        keys: keys.clone(),
    });
    let storefront = web::router(state.config.stripe_js.as_ref());
    let routes = Router::new()
        .merge(storefront)
        .route("/.well-known/jwks.json", get(jwks))
        .route("/openapi.json", get(openapi_json))
        .merge(docs::router())
        .fallback(proxy::forward)
        .with_state(state);
    Ok(server::layers("gateway", routes, vec![keys_check(keys)]))
}

/// Ready once the verification keys are known (i.e. the user service has answered).
fn keys_check(keys: Arc<keys::KeyStore>) -> ReadyCheck {
    Arc::new(move || {
        let keys = keys.clone();
        Box::pin(async move {
            if keys.published().keys.is_empty() {
                keys.refresh().await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    })
}

/// Token verification keys
///
/// The Ed25519 public keys (RFC 8037 JWKs) that verify access tokens, as published by the user
/// service. Not rate-limited. Cacheable for 5 minutes.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "getJwks",
    security(),
    responses(
        (status = 200, description = "The key set.", body = souk_contract::users::JwkSet,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
        (status = 503, response = inline(openapi::KeysUnavailable)),
    )
)]
async fn jwks(State(state): State<AppState>) -> Response {
    if state.keys.published().keys.is_empty() && state.keys.refresh().await.is_err() {
        return ApiError::unavailable("verification keys are not available yet").into_response();
    }
    let mut res = axum::Json(state.keys.published().as_ref().clone()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// This document
///
/// The whole public API as OpenAPI 3.1. Not rate-limited. The same document is shown as a
/// page at `/docs`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    security(),
    responses((status = 200, description = "This document.", body = Object))
)]
async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.config.openapi.0.clone(),
    )
        .into_response()
}
