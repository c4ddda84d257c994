//! Payment events relayed by the payment service (from Stripe's webhooks), each applied once.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use souk_common::error::parse_id;
use souk_common::{ApiError, ApiResult, Json};
use souk_contract::orders::{PaymentEvent, PaymentEventKind};
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::saga::{self, Driver};
use crate::state::{EventOutcome, OrderState, OrderStatus, PaymentStatus, SagaState};

pub fn router() -> Router<AppState> {
    Router::new().route("/internal/orders/{id}/payment-events", post(payment_event))
}

#[tracing::instrument(skip_all)]
async fn payment_event(
    State(state): State<AppState>,
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
    // the recovery loop, reads the same state from the payment service itself. What each event
    // does is decided in `state.rs`; the row stays locked from this read to the update.
    let current: Option<(OrderStatus, SagaState, PaymentStatus)> = sqlx::query_as(
        "SELECT status, saga_state, payment_status FROM orders
         WHERE id = $1 AND ($2::text IS NULL OR payment_intent_id IS NULL OR payment_intent_id = $2)
         FOR UPDATE",
    )
    .bind(id)
    .bind(&event.payment_intent_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, saga, payment)) = current else {
        tx.commit().await?;
        return Ok(StatusCode::OK);
    };
    let current = OrderState {
        status,
        saga,
        payment,
    };
    let moved: Option<SagaState> = match (event.kind, event.amount_refunded_cents) {
        (PaymentEventKind::PaymentSucceeded, None) => {
            apply(&mut tx, id, current, current.on_payment_succeeded()).await?
        }
        (PaymentEventKind::PaymentFailed, None) => {
            apply(&mut tx, id, current, current.on_payment_failed()).await?
        }
        (PaymentEventKind::Refunded, amount) => record_refund(&mut tx, id, amount).await?,
        _ => None,
    };
    tx.commit().await?;
    if matches!(
        moved,
        Some(SagaState::Completing | SagaState::Releasing | SagaState::Refunding)
    ) {
        let state = state.clone();
        // In this event's trace: the steps it set off show under the webhook that caused them.
        tokio::spawn(
            async move { saga::advance(&state, id, Driver::Request).await }.in_current_span(),
        );
    }
    Ok(StatusCode::OK)
}

/// Saves an event's outcome; the saga state it leaves the order in, None if it did nothing.
async fn apply(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    current: OrderState,
    outcome: Option<EventOutcome>,
) -> ApiResult<Option<SagaState>> {
    let Some(EventOutcome { next, late_success }) = outcome else {
        return Ok(None);
    };
    if !current.may_become(next) {
        return Err(ApiError::internal(format!(
            "order {id}: a payment event may not move {current:?} to {next:?}"
        )));
    }
    sqlx::query(
        "UPDATE orders SET saga_state = $2, status = $3, payment_status = $4,
           late_success = late_success OR $5, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(next.saga)
    .bind(next.status)
    .bind(next.payment)
    .bind(late_success)
    .execute(tx)
    .await?;
    Ok(Some(next.saga))
}

/// By amount: a partial refund (the Stripe dashboard) is shown, not taken for all. Neither the
/// status nor the saga moves; a paid order stays paid, its payment shows what went back.
async fn record_refund(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    amount_refunded_cents: Option<i64>,
) -> ApiResult<Option<SagaState>> {
    Ok(sqlx::query_scalar(
        "UPDATE orders SET
           amount_refunded_cents = greatest(amount_refunded_cents, COALESCE($2, total_cents)),
           payment_status = CASE
             WHEN greatest(amount_refunded_cents, COALESCE($2, total_cents)) >= total_cents
             THEN $4 ELSE payment_status END,
           updated_at = now()
         WHERE id = $1 AND payment_status = ANY($3)
         RETURNING saga_state",
    )
    .bind(id)
    .bind(amount_refunded_cents)
    .bind([PaymentStatus::Succeeded, PaymentStatus::Refunded])
    .bind(PaymentStatus::Refunded)
    .fetch_optional(tx)
    .await?)
}
