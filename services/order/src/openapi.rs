//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`).

use serde_json::json;
use souk_common::openapi::{Problem, problem_with};
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::model::Order;
use crate::state::PaymentStatus;

#[derive(OpenApi)]
#[openapi(
    paths(
        crate::checkout::checkout,
        crate::orders::list_mine,
        crate::orders::get_one,
        crate::orders::cancel,
        crate::orders::list_all,
        crate::orders::set_status,
        crate::promotions::list,
        crate::promotions::create,
        crate::promotions::show,
        crate::promotions::update,
        crate::promotions::generate,
    ),
    components(schemas(StockProblem, OrderProblem, PaymentFailedProblem))
)]
struct ApiDoc;

/// This service's operations and the schemas they use.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

// The user service's part defines `ShippingAddress` and the product service's `OptionValues`
// (their types live in souk-contract, shared with them): the order's schemas refer to them by
// name.

pub(crate) fn shipping_address() -> Ref {
    Ref::from_schema_name("ShippingAddress")
}

/// `shipping_address` of a checkout: the address, or null (or absent) for the profile's.
pub(crate) fn optional_shipping_address() -> Schema {
    OneOfBuilder::new()
        .item(shipping_address())
        .item(Object::with_type(Type::Null))
        .description(Some(
            "Defaults to the profile's saved address (also when null).",
        ))
        .into()
}

pub(crate) fn option_values() -> Ref {
    Ref::from_schema_name("OptionValues")
}

/// `payment.status`: every `PaymentStatus` by its wire name.
pub(crate) fn payment_status() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(PaymentStatus::ALL.iter().map(|s| s.as_str())))
        .description(Some(
            "`not_required`: the order's total was 0 (a 100 % discount), nothing was charged.",
        ))
        .build()
}

/// `OrderStatusChange.status`: the statuses an admin may move an order to.
pub(crate) fn admin_status() -> Object {
    use crate::state::OrderStatus;
    let targets = OrderStatus::ALL
        .iter()
        .filter(|s| OrderStatus::admin_source(**s).is_some())
        .map(|s| s.as_str());
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(targets))
        .build()
}

/// `payment.provider`: always the one provider (`const` in JSON Schema; utoipa has only `enum`).
pub(crate) fn payment_provider() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([crate::model::PAYMENT_PROVIDER]))
        .build()
}

/// `payment.next_action`: Stripe's object, described by `NextAction`.
pub(crate) fn next_action() -> RefOr<Schema> {
    NextAction::schema()
}

/// Only while `status` is `requires_action`: what Stripe asks of the shopper. `type` is
/// Stripe's (`use_stripe_sdk` for 3-D Secure 2, `redirect_to_url` with `redirect_to_url.url`).
// The order passes Stripe's object on unchanged (`serde_json::Value`); this type only describes
// the members a client needs.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "describes Stripe's JSON for the document; never built"
)]
struct NextAction {
    #[schema(examples("use_stripe_sdk"))]
    r#type: String,
    #[schema(inline, nullable = false)]
    redirect_to_url: Option<RedirectToUrl>,
}

#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "describes Stripe's JSON for the document; never built"
)]
struct RedirectToUrl {
    #[schema(nullable = false)]
    url: Option<String>,
}

/// Problem documents with members of their own: `allOf` `Problem` and those members, built by
/// `problem_with` as every service's problems are (`ApiError::with_extra` adds the members).
macro_rules! problem_schema {
    ($(#[$doc:meta])* $name:ident, $build:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $build
            }
        }
        impl ToSchema for $name {
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((Problem::name().into_owned(), Problem::schema()));
                schemas.push((Order::name().into_owned(), Order::schema()));
                Order::schemas(schemas);
            }
        }
    };
}

problem_schema!(
    /// A checkout's 409: `insufficient_stock` and `product_unavailable` name the products.
    StockProblem,
    problem_with(
        "A 409 problem; `insufficient_stock` and `product_unavailable` from checkout name the products concerned in `product_ids`.",
        json!({ "product_ids": { "type": "array", "items": { "type": "string", "format": "uuid" } } }),
        &[],
    )
);

problem_schema!(
    /// A checkout's 500/503, with the order when one was made.
    OrderProblem,
    problem_with(
        "A problem that may carry the order it concerns in `order`.",
        json!({ "order": { "$ref": "#/components/schemas/Order" } }),
        &[],
    )
);

problem_schema!(
    /// A checkout's 402: the declined order.
    PaymentFailedProblem,
    {
        let mut schema = problem_with(
            "402 `payment_failed`: the card was declined. `order` is the failed order (`status: payment_failed`, `payment.status: failed`); its stock was released.",
            json!({ "order": { "$ref": "#/components/schemas/Order" } }),
            &["order"],
        );
        if let RefOr::T(Schema::AllOf(all_of)) = &mut schema {
            all_of.examples = vec![crate::checkout::payment_failed_example()];
        }
        schema
    }
);
