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
    // Only an order waiting on the provider moves here; a checkout request in flight, or the
    // recovery loop, reads the same state from the payment service itself.
    let moved = match event.kind.as_str() {
        "payment_succeeded" => sqlx::query(
            "UPDATE orders SET saga_state = 'completing', status = 'paid', payment_status = 'succeeded', updated_at = now()
             WHERE id = $1 AND saga_state = 'awaiting_payment'",
        ),
        "payment_failed" => sqlx::query(
            "UPDATE orders SET saga_state = 'releasing', status = 'payment_failed', payment_status = 'failed', updated_at = now()
             WHERE id = $1 AND saga_state = 'awaiting_payment'",
        ),
        "refunded" => sqlx::query("UPDATE orders SET payment_status = 'refunded', updated_at = now() WHERE id = $1 AND status = 'cancelled'"),
        _ => sqlx::query("SELECT $1::uuid"),
    }
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if moved > 0 {
        let state = state.clone();
        tokio::spawn(async move { saga::advance(&state, id, Driver::Request).await });
    }
    Ok(StatusCode::OK)
}
