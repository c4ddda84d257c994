//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`). The gateway's own
//! paths: the keys, the document itself, and the health and metrics paths every service has
//! (`souk_common::ops`), which the public reaches on the gateway only.

use utoipa::OpenApi;

souk_common::problem_responses! {
    /// 503 from `/.well-known/jwks.json` before the user service has answered.
    KeysUnavailable => souk_common::openapi::problem(
        "`service_unavailable`: the keys have not been fetched from the user service yet.",
        souk_common::ApiError::unavailable("verification keys are not available yet"),
    );
}

#[derive(OpenApi)]
#[openapi(paths(
    crate::jwks,
    crate::openapi_json,
    souk_common::ops::healthz,
    souk_common::ops::ready,
    souk_common::ops::metrics_page,
))]
struct ApiDoc;

/// This service's operations and the schemas they use.
pub fn openapi() -> utoipa::openapi::OpenApi {
    souk_common::openapi::part("gateway", ApiDoc::openapi())
}
