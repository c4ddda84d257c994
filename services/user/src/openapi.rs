//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`).

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(
    crate::auth::register,
    crate::auth::login,
    crate::auth::refresh,
    crate::auth::logout,
    crate::profile::me,
    crate::profile::update_me,
    crate::admin::list,
    crate::admin::set_role,
))]
struct ApiDoc;

/// This service's operations and the schemas they use.
pub fn openapi() -> utoipa::openapi::OpenApi {
    souk_common::openapi::part("user", ApiDoc::openapi())
}
