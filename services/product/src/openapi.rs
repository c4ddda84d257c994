//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`).

use std::borrow::Cow;

use souk_common::ApiError;
use souk_common::openapi::problem;
use souk_contract::ErrorCode;
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::{catalog, categories, variants};

#[derive(OpenApi)]
#[openapi(
    paths(
        catalog::list,
        catalog::create,
        catalog::show,
        catalog::update,
        catalog::archive,
        catalog::set_stock,
        variants::create,
        variants::update,
        categories::list,
        categories::create,
        categories::show,
        categories::update,
        categories::remove,
    ),
    components(schemas(OptionValuesSchema))
)]
struct ApiDoc;

/// This service's operations and the schemas they use.
pub fn openapi() -> utoipa::openapi::OpenApi {
    souk_common::openapi::part("product", ApiDoc::openapi())
}

/// The `{id}` of a product's paths.
pub const PRODUCT_ID: &str = "The product's id (anything that is not a UUID is 404).";
/// The `{variant_id}` of a variant's path.
pub const VARIANT_ID: &str = "The variant's id (anything that is not a UUID is 404).";
/// The `{id}` of a category's paths.
pub const CATEGORY_ID: &str = "The category's id (anything that is not a UUID is 404).";
/// The conditional reads' request header.
pub const IF_NONE_MATCH: &str = "An `ETag` from an earlier answer: when the product (or page) is unchanged the answer is 304 without a body.";

/// `OptionValues` (`souk_contract::catalog::OptionValues`): that is an alias of a map, which
/// cannot carry a derive, and the bounds on its names and values are checked by
/// `variants::options`; so its schema is built here, as the one place that describes it.
pub struct OptionValuesSchema;

impl utoipa::PartialSchema for OptionValuesSchema {
    fn schema() -> RefOr<Schema> {
        let value = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(50));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(value))
            .max_properties(Some(variants::MAX_OPTIONS))
            .description(Some(
                "The variant's value for each of the product's options, e.g. `{\"size\": \"M\"}`; \
                 `{}` for a product without options.",
            ))
            .examples([serde_json::json!({"size": "M", "colour": "black"})])
            .into()
    }
}

impl utoipa::ToSchema for OptionValuesSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OptionValues")
    }
}

fn sku_taken() -> ApiError {
    ApiError::conflict(ErrorCode::SkuTaken, variants::SKU_TAKEN)
}

fn slug_taken() -> ApiError {
    ApiError::conflict(ErrorCode::SlugTaken, categories::SLUG_TAKEN)
}

/// 422 to a variant whose option values do not fit the product.
fn option_value_invalid() -> ApiError {
    ApiError::invalid_field(
        "option_values",
        "\"XXL\" is not a value of option \"size\" (S, M, L)",
    )
}

// This service's own error responses, inlined where an operation lists them; each example is
// what `ApiError` renders from the same detail the handler sends.
souk_common::problem_responses! {
    SkuTaken => problem(
        "`sku_taken`: a product or variant with this SKU already exists.",
        sku_taken(),
    );
    SkuTakenOnUpdate => problem("`sku_taken`: another product or variant has this SKU.", sku_taken());
    ProductInvalid => problem(
        "`validation_failed` (invalid field values), or `category_not_found` (field `category_ids` names an unknown category).",
        ApiError::invalid_field(
            "price_cents",
            "must be an integer number of cents from 0 to 100000000000",
        ),
    );
    ProductUpdateInvalid => problem(
        "`validation_failed`, or `category_not_found` (field `category_ids`).",
        ApiError::invalid_field("name", "cannot be null"),
    );
    VariantConflict => problem(
        "`sku_taken`: a product or variant with this SKU already exists. `too_many_variants`: the product has 300 variants.",
        sku_taken(),
    );
    VariantInvalid => problem(
        "`validation_failed`: invalid field values; `option_values` naming an option the product does not have, a value outside the option's values, or a combination another variant of this product already has; or the product has no options.",
        option_value_invalid(),
    );
    VariantUpdateInvalid => problem(
        "`validation_failed`: invalid field values; `option_values` naming an option the product does not have, a value outside the option's values, or a combination another variant of this product already has; `active: false` for the one variant of a product without options.",
        option_value_invalid(),
    );
    SlugTaken => problem("`slug_taken`: a category with this slug already exists.", slug_taken());
    SlugTakenOnUpdate => problem("`slug_taken`: another category has this slug.", slug_taken());
    CategoryInUse => problem(
        "`category_in_use`: it still has sub-categories or products.",
        ApiError::conflict(ErrorCode::CategoryInUse, categories::CATEGORY_IN_USE),
    );
    CategoryInvalid => problem(
        "`validation_failed`, or `category_not_found` (field `parent_id`).",
        ApiError::invalid_field(
            "slug",
            "must be 1 to 64 characters of a-z, 0-9 and inner hyphens",
        ),
    );
    CategoryUpdateInvalid => problem(
        "`validation_failed` (including a cycle through `parent_id`), or `category_not_found` (field `parent_id`).",
        ApiError::invalid_field(
            "parent_id",
            "cannot be the category itself or one of its sub-categories",
        ),
    );
}
