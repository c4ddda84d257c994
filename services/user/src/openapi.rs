//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`).

use utoipa::OpenApi;

/// Problem responses of one operation: each a `ToResponse` whose example is what `ApiError`
/// renders, to list as `(status = 409, response = inline(EmailTaken))`.
macro_rules! problems {
    ($( $name:ident: $status:ident, $code:ident, $detail:literal, $description:literal; )+) => {
        $(
            #[doc = $description]
            pub(crate) struct $name;
            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, utoipa::openapi::RefOr<utoipa::openapi::Response>) {
                    (
                        stringify!($name),
                        utoipa::openapi::RefOr::T(souk_common::openapi::problem_response(
                            $description,
                            axum::http::StatusCode::$status,
                            souk_contract::ErrorCode::$code,
                            $detail,
                            "Problem",
                            false,
                        )),
                    )
                }
            }
        )+
    };
}
pub(crate) use problems;

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
    ApiDoc::openapi()
}
