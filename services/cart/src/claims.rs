//! A checkout's claim on a cart (`/internal/carts/{user_id}/claims`, order service only).
//!
//! One claim per cart: a second checkout of the same cart, whatever its idempotency key, is
//! 409 `checkout_in_progress` while the first holds it. The claim ends when the order is paid
//! (`ordered` drops it with the bought lines, in one transaction) or when the order gives up
//! before charging (released: the cart is the shopper's again, unchanged). While it holds the
//! cart, the shopper cannot change it (`edit`): the order buys exactly what the cart shows.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use souk_common::error::parse_id;
use souk_common::{ApiError, ApiResult, Json};
use souk_contract::ErrorCode;
use souk_contract::carts::{CartItem, Claim, ClaimRequest};
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/carts/{user_id}/claims", post(claim))
        .route(
            "/internal/carts/{user_id}/claims/{order_id}",
            delete(release),
        )
}

/// Claims the cart for `order_id` and answers its lines, or answers the other order that holds
/// it (with no lines). Idempotent per order id; an empty cart is 409 `cart_empty`.
#[tracing::instrument(skip_all)]
async fn claim(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Json(body): Json<ClaimRequest>,
) -> ApiResult<Json<Claim>> {
    let user_id = parse_id(&user_id, "cart")?;
    let mut tx = state.db.begin().await?;
    // Edits of the cart wait for this claim's outcome, and it for theirs (see `edit`).
    crate::edit::lock_cart(&mut tx, user_id).await?;
    // A concurrent claim of the same cart waits here for the first one's outcome.
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO cart_claims (user_id, order_id) VALUES ($1, $2)
         ON CONFLICT (user_id) DO NOTHING RETURNING order_id",
    )
    .bind(user_id)
    .bind(body.order_id)
    .fetch_optional(&mut *tx)
    .await?;
    // Claimed before (a replay of this order's claim, or another order's): who holds it.
    let holder: Uuid = match claimed {
        Some(holder) => holder,
        None => {
            sqlx::query_scalar("SELECT order_id FROM cart_claims WHERE user_id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?
        }
    };
    if holder != body.order_id {
        // Held by another checkout: the order service decides (it knows whether that order
        // is still running, or died and left a stale claim to release).
        return Ok(Json(Claim {
            order_id: holder,
            items: Vec::new(),
            promotion_code: None,
        }));
    }
    // Each line carries the cart's promotion code, so one statement reads both.
    let lines: Vec<(Uuid, Option<Uuid>, i32, Option<String>)> = sqlx::query_as(
        "SELECT i.product_id, i.variant_id, i.quantity,
                (SELECT code FROM cart_promotions WHERE user_id = $1)
         FROM cart_items i WHERE i.user_id = $1
         ORDER BY i.created_at, i.variant_id",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    if lines.is_empty() {
        // Nothing to buy: no claim either, or it would block the next checkout for nothing.
        sqlx::query("DELETE FROM cart_claims WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Err(ApiError::conflict(
            ErrorCode::CartEmpty,
            "the cart is empty",
        ));
    }
    tx.commit().await?;
    let promotion_code = lines[0].3.clone();
    let items = lines
        .into_iter()
        .map(|(product_id, variant_id, quantity, _)| CartItem {
            product_id,
            variant_id,
            quantity,
        })
        .collect();
    Ok(Json(Claim {
        order_id: holder,
        items,
        promotion_code,
    }))
}

/// Gives the cart back, if `order_id` still holds it. Idempotent.
#[tracing::instrument(skip_all)]
async fn release(
    State(state): State<AppState>,
    Path((user_id, order_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let user_id = parse_id(&user_id, "cart")?;
    let order_id = parse_id(&order_id, "order")?;
    sqlx::query("DELETE FROM cart_claims WHERE user_id = $1 AND order_id = $2")
        .bind(user_id)
        .bind(order_id)
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
