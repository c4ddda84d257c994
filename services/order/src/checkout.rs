//! `POST /api/v1/checkout`: idempotent by `Idempotency-Key`, then the saga.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use souk_common::address::ShippingAddress;
use souk_common::{ApiError, ApiResult, AuthUser, FieldError, Json};
use souk_contract::ErrorCode;
use uuid::Uuid;

use crate::clients::RequestedItem;
use crate::model::{self, Order};
use crate::openapi::{
    CheckoutConflict, CheckoutFault, CheckoutInvalid, CheckoutRefused, CheckoutUnavailable,
    PaymentDeclined,
};
use crate::saga::{self, Driver, Stop};
use crate::state::{OrderStatus, SagaState};
use crate::{AppState, FaultPoint};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/checkout", post(checkout))
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckoutRequest {
    /// A Stripe PaymentMethod id. Test ids work: `pm_card_visa` succeeds,
    /// `pm_card_chargeDeclined` is declined.
    #[schema(min_length = 1, max_length = 255, examples("pm_card_visa"))]
    payment_method: String,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::optional_shipping_address)]
    shipping_address: Option<ShippingAddress>,
}

pub(crate) fn key_required() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::IdempotencyKeyRequired,
        "send an Idempotency-Key header (1-255 characters)",
    )
}

pub(crate) fn key_reused() -> ApiError {
    ApiError::conflict(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was used with a different request body",
    )
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<String> {
    let key = headers.get("idempotency-key").ok_or_else(key_required)?;
    let key = key
        .to_str()
        .map_err(|_| ApiError::bad_request("the Idempotency-Key must be visible ASCII"))?;
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::IdempotencyKeyInvalid,
            "the Idempotency-Key must be 1-255 characters",
        ));
    }
    Ok(key.to_owned())
}

/// Buy the cart
///
/// Turns the caller's cart into an order: reserves stock for every line (all or nothing),
/// prices it from the catalog (never from the client), charges `payment_method` through
/// Stripe, then empties the bought lines from the cart and queues one confirmation e-mail.
///
/// **Idempotency-Key** (required, 1-255 visible ASCII characters, scoped to the user): the
/// same key with the same body (compared after normalisation) answers as the first request
/// did, with the same order and no second charge; if the first request is still running the
/// retry waits up to ~10 s for it, then answers 409 `checkout_in_progress`. The same key with
/// a different body is 409 `idempotency_key_reused`. A missing key is 400
/// `idempotency_key_required`; an empty or over-255-character key is 400
/// `idempotency_key_invalid`. **One cart, one purchase**: a checkout claims the cart first;
/// while it runs (including while a payment waits for the shopper), another checkout of the
/// same cart, with any key, is 409 `checkout_in_progress`; once paid, the bought lines are
/// gone (409 `cart_empty`); a checkout that ends unpaid gives the cart back unchanged. A
/// checkout refused before anything was reserved (409 `cart_empty`, `insufficient_stock`,
/// `product_unavailable`, or 422) leaves no order and frees the key for a new attempt.
///
/// **Outcomes**: 201 with the order, `status: paid` normally, or `status: pending` when
/// Stripe needs more time or the shopper's action. **3-D Secure** (test id
/// `pm_card_threeDSecure2Required`): 201 with `status: pending` and `payment: {status:
/// "requires_action", payment_intent_id, client_secret, next_action}`; the client finishes the
/// challenge with Stripe.js, and the order becomes `paid` or `payment_failed` from Stripe's
/// webhook, or, when none arrives, from the order service asking Stripe (after 2 s, then
/// backing off to once a minute). The stock stays reserved for the **payment window of 20
/// minutes** (`SOUK_PAYMENT_WINDOW_SECS`; the reservation is held 10 minutes longer so it is
/// never swept and resold first); when the window ends the PaymentIntent is cancelled at
/// Stripe, then the stock released and the cart given back (`status: cancelled`). The shopper
/// may cancel a waiting order the same way (`POST /api/v1/orders/{id}/cancel`). A success that
/// still arrives for an order no longer waiting (cancelled, expired, failed) is refunded
/// automatically: the order shows `payment.status: refunded` and
/// `payment.amount_refunded_cents`. A declined card is 402 `payment_failed` with the order
/// (`status: payment_failed`, stock released) in the problem's `order` member.
/// `shipping_address` defaults to the profile's; with neither it is 422 (field
/// `shipping_address`). The body is parsed (400/415/422) before the key is checked. A
/// promotion code applied to the cart is re-checked and redeemed atomically with the order,
/// before any stock is reserved: `usage_limit`, `per_customer_limit` and single-use codes
/// hold under any concurrency.
#[utoipa::path(
    post,
    path = "/api/v1/checkout",
    operation_id = "checkout",
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = String, Header,
            description = "1-255 visible ASCII characters, unique per checkout attempt (a UUID is a good choice). See the operation's description.",
            min_length = 1, max_length = 255,
            example = "0193a1f2-4b5c-7d6e-8f90-a1b2c3d4e5f6"),
    ),
    request_body(
        content = CheckoutRequest,
        description = "How to pay and where to ship.",
        example = json!({"payment_method": "pm_card_visa"}),
    ),
    responses(
        (status = 201, description = "The order.", body = Order),
        (status = 400, response = inline(CheckoutRefused)),
        (status = 402, response = inline(PaymentDeclined)),
        (status = 409, response = inline(CheckoutConflict)),
        (status = 422, response = inline(CheckoutInvalid)),
        (status = 500, response = inline(CheckoutFault)),
        (status = 503, response = inline(CheckoutUnavailable)),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(mut body): Json<CheckoutRequest>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let mut errors = Vec::new();
    body.payment_method = body.payment_method.trim().to_owned();
    if body.payment_method.is_empty() || body.payment_method.len() > 255 {
        errors.push(FieldError::new(
            "payment_method",
            "must be a Stripe PaymentMethod id, e.g. \"pm_card_visa\"",
        ));
    }
    if let Some(address) = body.shipping_address.take() {
        match souk_common::address::normalized(address, "shipping_address") {
            Ok(a) => body.shipping_address = Some(a),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // "The same body" means the same request once normalised.
    let hash = Sha256::digest(serde_json::to_vec(&body).map_err(ApiError::internal)?).to_vec();

    if let Some(id) = existing(&state, user.id, &key, &hash).await? {
        return replay(&state, id).await;
    }
    let profile = state.clients.user(user.id).await?;
    let Some(address) = body.shipping_address.or(profile.shipping_address) else {
        // An empty cart is the more useful answer of the two.
        if state.clients.cart(user.id).await?.items.is_empty() {
            return Err(ApiError::conflict(
                ErrorCode::CartEmpty,
                "the cart is empty",
            ));
        }
        return Err(ApiError::invalid_field(
            "shipping_address",
            "no shipping address given and none saved in the profile",
        ));
    };

    // The cart's lines are read when the saga claims it (`claiming`): one checkout per cart.
    let items: Vec<RequestedItem> = Vec::new();
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO orders (id, user_id, status, saga_state, lease_until, idempotency_key, request_hash,
                             requested_items, payment_method, email, customer_name, shipping_address)
         VALUES ($1, $2, $11, $12, now() + make_interval(secs => $3), $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT ON CONSTRAINT orders_idempotency_key DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(user.id)
    .bind(state.config.lease.as_secs_f64())
    .bind(&key)
    .bind(&hash)
    .bind(sqlx::types::Json(&items))
    .bind(&body.payment_method)
    .bind(&profile.email)
    .bind(&profile.name)
    .bind(sqlx::types::Json(&address))
    .bind(OrderStatus::Pending)
    .bind(SagaState::Claiming)
    .fetch_optional(&state.db)
    .await?;
    let Some(id) = inserted else {
        // A concurrent request with the same key won the insert: answer as it does.
        let id = existing(&state, user.id, &key, &hash)
            .await?
            .ok_or_else(|| ApiError::internal("order vanished"))?;
        return replay(&state, id).await;
    };
    tracing::info!(order_id = %id, user_id = %user.id, "checkout started");
    if let Err(Stop::Interrupted(e)) = saga::crash_at(&state, FaultPoint::AfterOrderRow, id) {
        return Err(e);
    }
    match saga::drive(&state, id, Driver::Request).await {
        (Stop::Rejected(e), _) => Err(e),
        (Stop::Interrupted(e), _) => {
            let order = model::load(&state.db, id).await.ok();
            Err(with_order(e, order))
        }
        (Stop::Settled, Some(row)) => respond(model::with_items(&state.db, row).await?),
        (Stop::Settled, None) => respond(model::load(&state.db, id).await?),
    }
}

/// The order created earlier with this key within 24 hours, if any; 409 if the key came with
/// another body. An older key is retired so it can be used afresh, as Stripe does.
async fn existing(
    state: &AppState,
    user_id: Uuid,
    key: &str,
    hash: &[u8],
) -> ApiResult<Option<Uuid>> {
    let found: Option<(Uuid, Vec<u8>, bool)> = sqlx::query_as(
        "SELECT id, request_hash, created_at < now() - interval '24 hours'
         FROM orders WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(&state.db)
    .await?;
    match found {
        Some((id, _, true)) => {
            sqlx::query("UPDATE orders SET idempotency_key = 'expired:' || id::text || ':' || idempotency_key WHERE id = $1")
                .bind(id)
                .execute(&state.db)
                .await?;
            Ok(None)
        }
        Some((_, stored, false)) if stored != hash => Err(key_reused()),
        Some((id, _, false)) => Ok(Some(id)),
        None => Ok(None),
    }
}

/// Answers a repeated request with the original outcome, waiting briefly if it is still running.
async fn replay(state: &AppState, id: Uuid) -> ApiResult<Response> {
    for _ in 0..100 {
        let Some(row) = model::row(&state.db, id).await? else {
            // The first attempt was rejected and removed (e.g. out of stock): nothing to replay.
            return Err(ApiError::conflict(
                ErrorCode::InsufficientStock,
                "this checkout could not reserve stock",
            ));
        };
        if row.saga_state.has_outcome() {
            return respond(model::load(&state.db, id).await?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ApiError::conflict(
        ErrorCode::CheckoutInProgress,
        "a checkout with this Idempotency-Key is still running; retry shortly",
    ))
}

fn with_order(e: ApiError, order: Option<Order>) -> ApiError {
    match order.and_then(|o| serde_json::to_value(o).ok()) {
        Some(order) => e.with_extra("order", order),
        None => e,
    }
}

/// 201 with the order; a declined card is 402 with the order in the problem's `order` member.
fn respond(order: Order) -> ApiResult<Response> {
    if order.status == OrderStatus::PaymentFailed {
        return Err(payment_failed(order));
    }
    Ok((StatusCode::CREATED, Json(order)).into_response())
}

pub(crate) fn payment_failed(order: Order) -> ApiError {
    let e = ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        ErrorCode::PaymentFailed,
        "the card was declined",
    );
    with_order(e, Some(order))
}

/// The document's example of a 402: the problem of a declined order of two tees.
pub(crate) fn payment_failed_example() -> ApiError {
    use crate::model::{OrderItem, PAYMENT_PROVIDER, PaymentView};
    use crate::state::PaymentStatus;
    use chrono::TimeZone;
    let at = |secs| {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 15, secs)
            .single()
            .expect("a valid time")
    };
    let product_id = Uuid::from_u128(0x0193a1f2_7c4e_7d3a_9b1e_2f5c8d9e0a1b);
    let order = Order {
        id: Uuid::from_u128(0x0193a1f2_9d11_7b70_8c2e_5a4b3c2d1e0f),
        user_id: Uuid::from_u128(0x0193a1f0_1111_7222_8333_444455556666),
        status: OrderStatus::PaymentFailed,
        items: vec![OrderItem {
            product_id,
            variant_id: product_id,
            option_values: sqlx::types::Json(Default::default()),
            sku: "TEE-BLK-M".to_owned(),
            name: "Black tee, M".to_owned(),
            quantity: 2,
            unit_price_cents: 1999,
            line_total_cents: 3998,
            discount_cents: 0,
        }],
        subtotal_cents: 3998,
        discount_cents: 0,
        promotion_code: None,
        total_cents: 3998,
        currency: "usd".to_owned(),
        shipping_address: ShippingAddress {
            name: "Ada Lovelace".to_owned(),
            line1: "12 St James's Square".to_owned(),
            line2: None,
            city: "London".to_owned(),
            state: None,
            postal_code: "SW1Y 4JH".to_owned(),
            country: "GB".to_owned(),
        },
        payment: PaymentView {
            status: PaymentStatus::Failed,
            provider: PAYMENT_PROVIDER,
            payment_intent_id: Some("pi_3Q0abc".to_owned()),
            client_secret: None,
            next_action: None,
            amount_refunded_cents: 0,
        },
        created_at: at(0),
        updated_at: at(2),
    };
    payment_failed(order)
}
