//! Environment variables read by more than one part (a service and the operator that sets it,
//! or several services).

/// Base URL of each service, as its callers reach it (`http://host:port`).
pub const USER_URL: &str = "SOUK_USER_URL";
pub const PRODUCT_URL: &str = "SOUK_PRODUCT_URL";
pub const CART_URL: &str = "SOUK_CART_URL";
pub const ORDER_URL: &str = "SOUK_ORDER_URL";
pub const PAYMENT_URL: &str = "SOUK_PAYMENT_URL";

/// Set by the operator (or `souk up`) and read by the services.
/// The service's own PostgreSQL database.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Stripe's secret API key.
pub const STRIPE_SECRET_KEY: &str = "STRIPE_SECRET_KEY";
/// The signing secret of Stripe's webhook endpoint.
pub const STRIPE_WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";
/// Another Stripe API base URL (an emulator or a proxy).
pub const STRIPE_API_BASE: &str = "STRIPE_API_BASE";
/// Addresses whose `X-Forwarded-For` the gateway believes.
pub const TRUSTED_PROXIES: &str = "SOUK_TRUSTED_PROXIES";
/// Stripe's publishable key, for the storefront's Stripe.js.
pub const STRIPE_PUBLISHABLE_KEY: &str = "SOUK_STRIPE_PUBLISHABLE_KEY";
/// `json` or `text` (default: json when stdout is not a terminal).
pub const LOG_FORMAT: &str = "SOUK_LOG_FORMAT";
/// Where the storefront loads Stripe.js from.
pub const STRIPE_JS_URL: &str = "SOUK_STRIPE_JS_URL";
/// Where a service serves `/metrics` and the detailed `/readyz`.
pub const OPS_ADDR: &str = "SOUK_OPS_ADDR";
/// The sender of Souk's e-mail.
pub const MAIL_FROM: &str = "SOUK_MAIL_FROM";
/// Where a service listens for its API (`host:port`).
pub const LISTEN_ADDR: &str = "SOUK_LISTEN_ADDR";
/// The user service's token signing key (PEM).
pub const JWT_PRIVATE_KEY: &str = "SOUK_JWT_PRIVATE_KEY";
/// Signs service-to-service calls (`SOUK_INTERNAL_SECRET`).
pub const INTERNAL_SECRET: &str = "SOUK_INTERNAL_SECRET";
/// How long a connection may take to send its request headers.
pub const HEADER_READ_TIMEOUT_MS: &str = "SOUK_HEADER_READ_TIMEOUT_MS";
/// The SMTP server the payment service sends e-mail through.
pub const SMTP_URL: &str = "SOUK_SMTP_URL";
/// The first admin's password.
pub const ADMIN_PASSWORD: &str = "SOUK_ADMIN_PASSWORD";
/// The first admin, created at start-up.
pub const ADMIN_EMAIL: &str = "SOUK_ADMIN_EMAIL";

// Standard OpenTelemetry variables: the services read them (traces are exported only when an
// endpoint is set) and the operator sets them from a Shop's `telemetry`.
/// Where spans are sent (OTLP over HTTP/protobuf, e.g. `http://otel-collector:4318`;
/// `/v1/traces` is appended).
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Like `OTLP_ENDPOINT`, the full URL for traces (nothing appended).
pub const OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The exported `service.name` (default: `souk-<service>`, `souk` for `souk up`).
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// Which spans are kept: `parentbased_always_on` (default), `traceidratio`, …
pub const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// The sampler's argument: the ratio of a `traceidratio` sampler.
pub const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// Attributes of every span's resource (`key=value,…`), e.g. `service.namespace`.
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
