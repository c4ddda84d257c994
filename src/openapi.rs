//! The public API's OpenAPI document, generated from the code: the shared frame and
//! components (`souk_common::openapi`) with every service's part merged in. The gateway
//! serves it at `/openapi.json` (and a page for it at `/docs`); `souk openapi` prints it.

use utoipa::openapi::OpenApi;

/// The whole public API.
pub fn document() -> OpenApi {
    let mut doc = souk_common::openapi::base();
    for part in [
        souk_user::openapi(),
        souk_product::openapi(),
        souk_cart::openapi(),
        souk_order::openapi(),
        souk_payment::openapi(),
        souk_gateway::openapi(),
    ] {
        doc.merge(part);
    }
    souk_common::openapi::finish(&mut doc);
    doc
}

#[cfg(test)]
mod tests;

/// `document()` as the JSON the gateway serves.
pub fn document_json() -> String {
    souk_common::openapi::to_json(&document())
}
