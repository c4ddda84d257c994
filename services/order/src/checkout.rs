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
use crate::saga::{self, Driver, Stop};
use crate::state::{OrderStatus, SagaState};
use crate::{AppState, FaultPoint};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/checkout", post(checkout))
}

#[derive(Deserialize, Serialize)]
struct CheckoutRequest {
    payment_method: String,
    #[serde(default)]
    shipping_address: Option<ShippingAddress>,
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<String> {
    let key = headers.get("idempotency-key").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::IdempotencyKeyRequired,
            "send an Idempotency-Key header (1-255 characters)",
        )
    })?;
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

#[tracing::instrument(skip_all)]
async fn checkout(
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
    match saga::advance(&state, id, Driver::Request).await {
        Stop::Rejected(e) => Err(e),
        Stop::Interrupted(e) => {
            let order = model::load(&state.db, id).await.ok();
            Err(with_order(e, order))
        }
        Stop::Settled => respond(model::load(&state.db, id).await?),
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
        Some((_, stored, false)) if stored != hash => Err(ApiError::conflict(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request body",
        )),
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
        let e = ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            ErrorCode::PaymentFailed,
            "the card was declined",
        );
        return Err(with_order(e, Some(order)));
    }
    Ok((StatusCode::CREATED, Json(order)).into_response())
}
