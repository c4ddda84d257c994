//! The public API's OpenAPI document, generated from the code: the shared frame and
//! components (`souk_common::openapi`) with every service's part merged in. `souk openapi`
//! prints it; `src/openapi.json` is that output, which the gateway serves at `/openapi.json`
//! (and a page for it at `/docs`) as it is, so serving never runs the generator: that would
//! cost every gateway process the pages of code it touches (about 8 MB of its idle RSS).
//! `tests::the_served_document_is_the_generated_one` keeps the file fresh.

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

/// `document()` as `souk openapi` prints it (and `src/openapi.json` holds it).
pub fn document_json() -> String {
    let mut json =
        serde_json::to_string_pretty(&document()).expect("an OpenAPI document serialises");
    json.push('\n');
    json
}

/// The document the gateway serves: `document_json()`, generated when the code changed
/// (`cargo run -- openapi > src/openapi.json`).
pub const DOCUMENT: &str = include_str!("openapi.json");
