//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`).
//!
//! Besides the shared error responses (`souk_common::openapi`), the cart's operations answer
//! problems of their own: each is a small `ToResponse` here, inlined where an operation lists
//! it, whose example is what `ApiError` really renders for it.

use axum::http::StatusCode;
use serde_json::json;
use souk_common::ApiError;
use souk_common::openapi::{problem, problem_as};
use souk_contract::ErrorCode;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(
        crate::cart::show,
        crate::cart::clear,
        crate::cart::add,
        crate::cart::set_quantity,
        crate::cart::remove,
        crate::promotion::apply,
        crate::promotion::remove,
    ),
    components(schemas(PromotionProblem))
)]
struct ApiDoc;

/// This service's operations and the schemas they use.
pub fn openapi() -> utoipa::openapi::OpenApi {
    souk_common::openapi::part("cart", ApiDoc::openapi())
}

/// `CartLine.option_values`: the product service's `OptionValues` schema (the cart shows the
/// variant's options as the catalog gives them), referenced by name since that service's part
/// of the document defines it.
pub fn option_values() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("OptionValues"))
}

/// `CartPromotion.kind`: the order service's `PromotionKind` (the cart relays what the order
/// service says), or null.
pub fn promotion_kind() -> Schema {
    OneOfBuilder::new()
        .item(Ref::from_schema_name("PromotionKind"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "null when no active promotion has this code any more.",
        ))
        .into()
}

/// Why a promotion code does not apply to a cart: the reasons the order service's quote gives
/// (`order/src/redeem.rs`), and `not_found`, which the cart shows for a stored code that no
/// active promotion has any more.
pub const NOT_APPLICABLE_REASONS: [&str; 7] = [
    "expired",
    "not_started",
    "exhausted",
    "min_subtotal",
    "no_eligible_items",
    "customer_limit",
    "not_found",
];

/// `CartPromotion.reason`: why a stored code does not apply now, or null.
pub fn not_applicable_reason() -> Schema {
    let reasons = NOT_APPLICABLE_REASONS
        .iter()
        .map(|reason| json!(reason))
        .chain([serde_json::Value::Null]);
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(reasons))
        .description(Some(
            "Why it does not apply (`not_found`: switched off since it was applied).",
        ))
        .into()
}

/// The 422 of `PUT /cart/promotion`: a `Problem` with the `reason` the code does not apply.
/// Built with `problem_with` because problems are rendered by `ApiError`, not by a type of
/// their own.
pub struct PromotionProblem;

impl PartialSchema for PromotionProblem {
    fn schema() -> RefOr<Schema> {
        souk_common::openapi::problem_with(
            "A `promotion_not_applicable` problem: `reason` says why the code cannot be used.",
            json!({ "reason": { "type": "string", "enum": NOT_APPLICABLE_REASONS } }),
            &[],
        )
    }
}

impl ToSchema for PromotionProblem {}

/// What a checkout that holds the cart makes every edit answer (`edit::begin`).
const CHECKOUT_IN_PROGRESS: &str = "`checkout_in_progress`: a checkout holds this cart (the order is named in `detail`); complete or cancel that order to change the cart.";

fn checkout_in_progress() -> ApiError {
    ApiError::conflict(
        ErrorCode::CheckoutInProgress,
        "a checkout (order 0193a1f2-7c4e-7d3a-9b1e-2f5c8d9e0a1b) holds this cart: complete or \
         cancel that order to change the cart",
    )
}

fn insufficient_stock() -> ApiError {
    ApiError::conflict(
        ErrorCode::InsufficientStock,
        "only 3 of this item are in stock",
    )
}

souk_common::problem_responses! {
    /// 409 to an edit while a checkout holds the cart.
    CheckoutInProgress => problem(CHECKOUT_IN_PROGRESS, checkout_in_progress());
    /// 409 to adding a product.
    AddConflict => problem(
        &format!("`insufficient_stock` (the line would exceed the stock) or `cart_full` (100 different products already). {CHECKOUT_IN_PROGRESS}"),
        insufficient_stock(),
    );
    /// 409 to setting a line's quantity.
    QuantityConflict => problem(
        &format!("`insufficient_stock`: more than the variant's stock. {CHECKOUT_IN_PROGRESS}"),
        insufficient_stock(),
    );
    /// 404 to adding a product that is not for sale.
    ProductNotSold => problem(
        "`not_found`: no such product or variant, or it is archived or switched off (not for sale).",
        ApiError::not_found("no such product or variant, or it is no longer sold"),
    );
    /// 404 to setting the quantity of a line that is not there.
    LineNotFound => problem(
        "`not_found`: the variant is not in the cart, or it is archived, or the id is not a UUID.",
        ApiError::not_found("this item is not in your cart"),
    );
    /// 404 to removing a line whose id is not a UUID.
    LineIdNotFound => problem(
        "`not_found`: the id is not a UUID.",
        ApiError::not_found("no such cart line"),
    );
    /// 422 to adding a product.
    AddInvalid => problem(
        "`variant_required` (field `variant_id`): the product has options, so the line needs a `variant_id`. `validation_failed`: `quantity` outside 1-100, or `variant_id` is a variant of another product.",
        ApiError::invalid_field("quantity", "must be an integer from 1 to 100"),
    );
    /// 422 to setting a line's quantity.
    QuantityInvalid => problem(
        "`validation_failed`: `quantity` outside 0-100.",
        ApiError::invalid_field("quantity", "must be an integer from 0 to 100"),
    );
    /// 503 to a change that needs the catalog while the product service is down.
    CatalogUnavailable => problem(
        "`service_unavailable`: the product service cannot be asked, so the change cannot be checked; nothing was changed. Also the gateway's answer when the cart service itself is unreachable.",
        ApiError::unavailable("the product service is unavailable, try again shortly"),
    );
    /// 404 to applying a code no active promotion has.
    PromotionNotFound => problem(
        "`promotion_not_found`: no active promotion has this code.",
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::PromotionNotFound, "no promotion has this code"),
    );
    /// 422 to applying a code that does not apply to the cart.
    PromotionNotApplicable => problem_as(
        "`promotion_not_applicable` with `reason`: `expired`, `not_started`, `exhausted`, `min_subtotal`, `no_eligible_items` or `customer_limit`; or `validation_failed` (empty or over 64 characters).",
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PromotionNotApplicable,
            "this code cannot be used for this cart (min_subtotal)",
        )
        .with_extra("reason", json!("min_subtotal")),
        "PromotionProblem",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn document() -> Value {
        let mut doc = souk_common::openapi::base();
        doc.merge(openapi());
        serde_json::to_value(doc).expect("serialises")
    }

    /// The limits the document states are the ones the handlers enforce.
    #[test]
    fn documented_limits_are_the_enforced_ones() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let max = json!(crate::cart::MAX_QUANTITY);
        assert_eq!(
            schemas["CartItemAdd"]["properties"]["quantity"]["maximum"],
            max
        );
        assert_eq!(
            schemas["CartItemQuantity"]["properties"]["quantity"]["maximum"],
            max
        );
        assert_eq!(
            schemas["CartLine"]["properties"]["quantity"]["maximum"],
            max
        );
        assert_eq!(
            schemas["CartPromotionRequest"]["properties"]["code"]["maxLength"],
            json!(crate::promotion::MAX_CODE_LEN)
        );
    }

    /// Every example of a problem this service documents is a problem of the status it is
    /// documented for.
    #[test]
    fn problem_examples_match_their_status() {
        let doc = document();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let example = &response["content"]["application/problem+json"]["example"];
                    if example.is_null() {
                        continue;
                    }
                    seen += 1;
                    assert_eq!(
                        example["status"].to_string(),
                        *status,
                        "{method} {path} {status}"
                    );
                }
            }
        }
        assert!(seen >= 10, "only {seen} problem examples");
    }
}
