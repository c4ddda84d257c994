//! Payment events relayed by the payment service (from Stripe's webhooks), each applied once.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use souk_common::error::parse_id;
use souk_common::{ApiResult, Json, ServiceCaller};

use crate::AppState;
use crate::saga::{self, Driver};

pub fn router() -> Router<AppState> {
    Router::new().route("/internal/orders/{id}/payment-events", post(payment_event))
}

#[derive(Deserialize)]
struct PaymentEvent {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payment_intent_id: Option<String>,
    /// For `refunded`: everything refunded on the charge so far.
    #[serde(default)]
    amount_refunded_cents: Option<i64>,
}

async fn payment_event(
    State(state): State<AppState>,
    _service: ServiceCaller,
    Path(id): Path<String>,
    Json(event): Json<PaymentEvent>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "order")?;
    let mut tx = state.db.begin().await?;
    let first = sqlx::query(
        "INSERT INTO processed_payment_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(&event.event_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first {
        return Ok(StatusCode::OK);
    }
    // Only the order's own PaymentIntent may move it (an order whose charge answer is not
    // saved yet has none: the payment service matched it by the order id in Stripe's metadata).
    // Only an order waiting on the provider is settled here; a checkout request in flight, or
    // the recovery loop, reads the same state from the payment service itself. A success for
    // an order that stopped waiting (cancelled, expired, failed) is refunded: at once when the
    // order is finished, else when its release ends (`late_success`).
    let moved: Option<String> = match event.kind.as_str() {
        "payment_succeeded" => sqlx::query_scalar(
            "UPDATE orders SET
               saga_state = CASE
                 WHEN saga_state = 'awaiting_payment' THEN 'completing'
                 WHEN saga_state = 'done' AND status IN ('cancelled', 'payment_failed')
                      AND payment_status <> 'refunded' THEN 'refunding'
                 ELSE saga_state END,
               status = CASE WHEN saga_state = 'awaiting_payment' THEN 'paid' ELSE status END,
               payment_status = CASE WHEN saga_state IN ('awaiting_payment', 'done')
                                     THEN 'succeeded' ELSE payment_status END,
               late_success = late_success OR saga_state IN ('releasing', 'cancelling'),
               updated_at = now()
             WHERE id = $1 AND ($2::text IS NULL OR payment_intent_id IS NULL OR payment_intent_id = $2)
               AND NOT (saga_state = 'done' AND status IN ('paid', 'shipped', 'delivered'))
               AND $3::bigint IS NULL
             RETURNING saga_state",
        ),
        "payment_failed" => sqlx::query_scalar(
            "UPDATE orders SET saga_state = 'releasing', status = 'payment_failed', payment_status = 'failed', updated_at = now()
             WHERE id = $1 AND saga_state = 'awaiting_payment' AND $3::bigint IS NULL
               AND ($2::text IS NULL OR payment_intent_id IS NULL OR payment_intent_id = $2)
             RETURNING saga_state",
        ),
        // By amount: a partial refund (the Stripe dashboard) is shown, not taken for all.
        "refunded" => sqlx::query_scalar(
            "UPDATE orders SET
               amount_refunded_cents = greatest(amount_refunded_cents, COALESCE($3, total_cents)),
               payment_status = CASE WHEN greatest(amount_refunded_cents, COALESCE($3, total_cents)) >= total_cents
                                     THEN 'refunded' ELSE payment_status END,
               updated_at = now()
             WHERE id = $1 AND payment_status IN ('succeeded', 'refunded')
               AND ($2::text IS NULL OR payment_intent_id IS NULL OR payment_intent_id = $2)
             RETURNING saga_state",
        ),
        _ => sqlx::query_scalar(
            "SELECT NULL::text WHERE $1::uuid IS NULL AND $2::text IS NULL AND $3::bigint IS NULL",
        ),
    }
    .bind(id)
    .bind(&event.payment_intent_id)
    .bind(event.amount_refunded_cents)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if matches!(
        moved.as_deref(),
        Some("completing" | "releasing" | "refunding")
    ) {
        let state = state.clone();
        tokio::spawn(async move { saga::advance(&state, id, Driver::Request).await });
    }
    Ok(StatusCode::OK)
}
