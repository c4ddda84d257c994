//! This service's part of the public API's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` annotations and its bodies' `ToSchema` derives. The runner merges every
//! service's part into the document the gateway serves (`souk::openapi`).

use axum::http::StatusCode;
use serde_json::json;
use souk_common::ApiError;
use souk_common::openapi::{Problem, problem, problem_as, problem_with};
use souk_contract::ErrorCode;
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
    souk_common::openapi::part("order", ApiDoc::openapi())
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
            all_of.examples = vec![crate::checkout::payment_failed_example().body()];
        }
        schema
    }
);

// What a checkout, a cancellation or a promotion answers of its own; each example is rendered
// by the code that answers.
souk_common::problem_responses! {
    /// 400 to a checkout without a usable `Idempotency-Key`.
    CheckoutRefused => problem(
        "`idempotency_key_required`, `idempotency_key_invalid`, or `malformed_request` (malformed JSON, or a key that is not visible ASCII).",
        crate::checkout::key_required(),
    );
    /// 402 to a declined card.
    PaymentDeclined => problem_as(
        "`payment_failed`: the card was declined; the failed order is in `order`.",
        crate::checkout::payment_failed_example(),
        "PaymentFailedProblem",
    );
    /// 409 to a checkout that cannot go ahead.
    CheckoutConflict => problem_as(
        "`cart_empty`; `insufficient_stock` or `product_unavailable` (with `product_ids`, nothing reserved); `idempotency_key_reused`; `checkout_in_progress`. `promotion_unavailable` (with `reason`): the cart's promotion code can no longer be used (expired, used up, limit reached, switched off); no order is made, nothing is reserved or charged, the cart and its code stay.",
        crate::checkout::key_reused(),
        "StockProblem",
    );
    /// 422 to a checkout's invalid body.
    CheckoutInvalid => problem(
        "`validation_failed`: `payment_method` empty or over 255 characters, an invalid `shipping_address.*` field, or no shipping address at all.",
        ApiError::invalid_field(
            "shipping_address",
            "no shipping address given and none saved in the profile",
        ),
    );
    /// 500 to a checkout that failed, with the order when one was made.
    CheckoutFault => problem_as(
        "`internal_error`: an unexpected fault. If the order was already created it is in the problem's `order` member and is finished in the background (retry with the same key to see its outcome).",
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "an unexpected error occurred",
        ),
        "OrderProblem",
    );
    /// 503 to a checkout that could not reach a service, with the order when one was made.
    CheckoutUnavailable => problem_as(
        "`service_unavailable`: a service behind the order service could not be reached. If the order was already created it is in the problem's `order` member and is finished in the background (retry with the same key to see its outcome).",
        ApiError::unavailable("the payment service is unavailable, try again shortly"),
        "OrderProblem",
    );
    /// 409 to cancelling an order that cannot be cancelled.
    CannotCancel => problem(
        "`illegal_transition`: the order cannot be cancelled in its status.",
        crate::orders::cannot_cancel(crate::state::OrderStatus::Shipped),
    );
    /// 503 to a cancellation whose refund or restock must wait.
    CancelUnfinished => problem(
        "`service_unavailable`: the refund or restock could not be finished now; the cancellation is completed in the background.",
        ApiError::unavailable("the payment service is unavailable, try again shortly"),
    );
    /// 409 to an admin's move the lifecycle does not allow.
    IllegalMove => problem(
        "`illegal_transition`.",
        crate::orders::illegal_move(crate::state::OrderStatus::Pending, "shipped"),
    );
    /// 409 to a promotion or code whose code is taken.
    CodeTaken => problem(
        "`code_taken`: another promotion or single-use code has this code (case-insensitive).",
        crate::promotions::code_taken(),
    );
}
