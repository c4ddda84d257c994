//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`).

use axum::http::StatusCode;
use souk_common::ApiError;
use souk_common::openapi::problem;
use souk_contract::ErrorCode;
use utoipa::OpenApi;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

#[derive(OpenApi)]
#[openapi(paths(crate::webhook::receive))]
struct ApiDoc;

/// This service's operations and the schemas they use.
pub fn openapi() -> utoipa::openapi::OpenApi {
    souk_common::openapi::part("payment", ApiDoc::openapi())
}

/// `WebhookAck.received`: always `true` (a one-value enum: utoipa's schema has no `const`).
pub fn always_true() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .into()
}

souk_common::problem_responses! {
    /// 400 to a webhook that is refused: Stripe does not retry it.
    WebhookRefused => problem(
        "`invalid_signature` (header missing, signature wrong, timestamp too old, body not UTF-8) or `malformed_request` (a verified body that is not a Stripe event).",
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidSignature,
            "the Stripe-Signature header is missing",
        ),
    );
    /// 503 when the order service cannot be told about an event: Stripe delivers it again.
    OrderServiceUnavailable => problem(
        "`service_unavailable`: the order service could not be told; Stripe retries.",
        ApiError::unavailable("the order service is unavailable; retry later"),
    );
}
