//! Stripe's webhooks (`POST /api/v1/payments/webhook`, public through the gateway).
//!
//! Each event is verified with its `Stripe-Signature`, then applied: the payment's update (a
//! single conditional statement, so applying it twice changes nothing), then the order
//! service is told (idempotent on its side, keyed by the event id), and only then is the event
//! recorded in `processed_events`. No transaction is held across the call to the order
//! service. If that service cannot be reached, the answer is 503 and nothing is recorded, so
//! Stripe delivers the event again later.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use souk_common::client::CallError;
use souk_common::openapi::{InvalidToken, PayloadTooLarge};
use souk_common::{ApiError, ApiResult, Json};
use souk_contract::ErrorCode;
use souk_contract::orders::{self, PaymentEvent, PaymentEventKind};
use souk_contract::payments::PaymentStatus;
use uuid::Uuid;

use crate::AppState;
use crate::openapi::{OrderServiceUnavailable, WebhookRefused};
use crate::stripe::{StripeEvent, VerifiedEventKind, WebhookError, verify_webhook};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/payments/webhook", post(receive))
}

fn invalid_signature(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidSignature, detail)
}

/// Stripe's answer to an event that needs no retry.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookAck {
    #[schema(schema_with = crate::openapi::always_true)]
    received: bool,
}

fn received() -> Json<WebhookAck> {
    Json(WebhookAck { received: true })
}

/// Stripe events
///
/// Called by Stripe, not by shoppers; no access token. The raw body is verified against the
/// `Stripe-Signature` header (HMAC with the endpoint's signing secret, timestamp tolerance as
/// Stripe's libraries). `payment_intent.succeeded`, `payment_intent.payment_failed` and
/// `charge.refunded` update the payment and its order; other event types are acknowledged and
/// ignored. Each event id is processed once: a redelivery is acknowledged without effect. If
/// the order service cannot be told, the answer is 503 and nothing is recorded, so Stripe
/// delivers the event again. The body is read as bytes (no `Content-Type` check, so no 415 or
/// 422). Like every `/api/v1` request it is rate-limited per client address.
#[utoipa::path(
    post,
    path = "/api/v1/payments/webhook",
    operation_id = "stripeWebhook",
    security(),
    params(
        ("Stripe-Signature" = String, Header, description = "Stripe's signature header, `t=<timestamp>,v1=<hmac>`."),
    ),
    request_body(content = StripeEvent, description = "A Stripe event, exactly as Stripe sent it."),
    responses(
        (status = 200, description = "Acknowledged (processed, already processed, or ignored).", body = WebhookAck),
        (status = 400, response = inline(WebhookRefused)),
        (status = 401, response = InvalidToken),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = inline(OrderServiceUnavailable)),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookAck>> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid_signature("the Stripe-Signature header is missing"))?;
    let payload =
        std::str::from_utf8(&body).map_err(|_| invalid_signature("the event is not UTF-8 text"))?;
    let event = verify_webhook(payload, signature, &state.webhook_secret).map_err(|e| {
        tracing::warn!(error = %e, "webhook refused");
        match e {
            WebhookError::BadSignature(_) | WebhookError::StaleTimestamp(_) => {
                invalid_signature(e.to_string())
            }
            WebhookError::Malformed(_) => ApiError::bad_request(e.to_string()),
        }
    })?;

    let (notice_kind, new_status, payment_intent_id, order_hint) = match &event.kind {
        VerifiedEventKind::PaymentSucceeded {
            payment_intent_id,
            order_id,
        } => (
            PaymentEventKind::PaymentSucceeded,
            PaymentStatus::Succeeded,
            Some(payment_intent_id.as_str()),
            order_id.as_deref(),
        ),
        VerifiedEventKind::PaymentFailed {
            payment_intent_id,
            order_id,
        } => (
            PaymentEventKind::PaymentFailed,
            PaymentStatus::Failed,
            Some(payment_intent_id.as_str()),
            order_id.as_deref(),
        ),
        VerifiedEventKind::ChargeRefunded {
            payment_intent_id, ..
        } => (
            PaymentEventKind::Refunded,
            PaymentStatus::Refunded,
            payment_intent_id.as_deref(),
            None,
        ),
        VerifiedEventKind::Other(kind) => {
            tracing::debug!(event_id = %event.id, kind, "webhook event ignored");
            return Ok(received());
        }
    };
    let kind = notice_kind.as_str();

    let seen: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = $1)")
            .bind(&event.id)
            .fetch_one(&state.db)
            .await?;
    if seen {
        tracing::info!(event_id = %event.id, kind, "webhook event already processed");
        return Ok(received());
    }

    // The payment: by PaymentIntent, else by the order id Stripe carries in its metadata
    // (the webhook may overtake the charge's own answer).
    let mut found: Option<Found> = match payment_intent_id {
        Some(pi) => {
            sqlx::query_as(
                "SELECT order_id, status, status_from_webhook FROM payments
                 WHERE payment_intent_id = $1",
            )
            .bind(pi)
            .fetch_optional(&state.db)
            .await?
        }
        None => None,
    };
    if found.is_none()
        && let Some(hint) = order_hint.and_then(|h| h.parse::<Uuid>().ok())
    {
        found = sqlx::query_as(
            "SELECT order_id, status, status_from_webhook FROM payments WHERE order_id = $1",
        )
        .bind(hint)
        .fetch_optional(&state.db)
        .await?
        .or(Some(Found {
            order_id: hint,
            status: None,
            status_from_webhook: false,
        }));
    }
    let Some(found) = found else {
        tracing::warn!(event_id = %event.id, kind, ?payment_intent_id, "webhook event for no known payment");
        record(&state, &event.id, kind).await?;
        return Ok(received());
    };
    let order_id = found.order_id;

    // Final states are not left for an earlier one (Stripe does not promise ordering).
    let allowed_from: &[PaymentStatus] = match new_status {
        PaymentStatus::Succeeded => &[
            PaymentStatus::Pending,
            PaymentStatus::Processing,
            PaymentStatus::RequiresAction,
            PaymentStatus::Failed,
            PaymentStatus::Canceled,
        ],
        PaymentStatus::Failed => &[
            PaymentStatus::Pending,
            PaymentStatus::Processing,
            PaymentStatus::RequiresAction,
        ],
        _ => &[PaymentStatus::Succeeded],
    };
    let amount_refunded = match &event.kind {
        VerifiedEventKind::ChargeRefunded {
            amount_refunded, ..
        } => Some(*amount_refunded),
        _ => None,
    };
    // A refund is tracked by amount: refunded in full only once all of it is back.
    let updated = if let Some(amount) = amount_refunded {
        sqlx::query(
            "UPDATE payments SET amount_refunded_cents = greatest(amount_refunded_cents, $2),
                 status = CASE WHEN greatest(amount_refunded_cents, $2) >= amount_cents
                               THEN 'refunded' ELSE status END,
                 updated_at = now()
             WHERE order_id = $1 AND status IN ('succeeded', 'refunded')",
        )
        .bind(order_id)
        .bind(amount)
        .execute(&state.db)
        .await?
        .rows_affected()
    } else {
        sqlx::query(
            "UPDATE payments
         SET status = $2, status_from_webhook = true,
             payment_intent_id = COALESCE(payment_intent_id, $3),
             failure_code = CASE WHEN $2 = 'failed' THEN COALESCE(failure_code, 'payment_failed')
                                 WHEN $2 = 'succeeded' THEN NULL ELSE failure_code END,
             failure_message = CASE WHEN $2 = 'succeeded' THEN NULL ELSE failure_message END,
             updated_at = now()
         WHERE order_id = $1 AND status = ANY($4)
           AND (payment_intent_id IS NULL OR $3::text IS NULL OR payment_intent_id = $3)",
        )
        .bind(order_id)
        .bind(new_status)
        .bind(payment_intent_id)
        .bind(allowed_from)
        .execute(&state.db)
        .await?
        .rows_affected()
    };
    tracing::info!(event_id = %event.id, kind, %order_id, updated, "webhook event processed");

    // The event repeats the answer the order service got to its own call (the charge's, most
    // often): it knows already, so no notice. A status that an earlier delivery of a webhook
    // set is told again, since that delivery's notice may have failed.
    if updated == 0
        && amount_refunded.is_none()
        && found.status == Some(new_status)
        && !found.status_from_webhook
    {
        record(&state, &event.id, kind).await?;
        return Ok(received());
    }

    let notice = PaymentEvent {
        event_id: event.id.clone(),
        kind: notice_kind,
        payment_intent_id: payment_intent_id.map(str::to_owned),
        amount_refunded_cents: amount_refunded,
    };
    match state
        .order
        .call_empty(
            Method::POST,
            &orders::payment_events(order_id),
            Some(&notice),
            None,
        )
        .await
    {
        Ok(()) => {}
        // The order service gave a final answer (it does not know this order, say): nothing
        // more to do, and Stripe must not keep retrying.
        Err(CallError::Api(e)) if e.status.is_client_error() => {
            tracing::warn!(event_id = %event.id, %order_id, error = %e,
                "the order service refused a payment event");
        }
        Err(e) => {
            tracing::warn!(event_id = %event.id, %order_id, error = %e,
                "the order service could not be told; Stripe will retry");
            return Err(ApiError::unavailable(
                "the order service is unavailable; retry later",
            ));
        }
    }
    record(&state, &event.id, kind).await?;
    Ok(received())
}

/// The payment an event is about, as it was before the event.
#[derive(sqlx::FromRow)]
struct Found {
    order_id: Uuid,
    /// None: no payment recorded for the order yet (the charge's own call has not reached us).
    status: Option<PaymentStatus>,
    status_from_webhook: bool,
}

/// The event has been applied everywhere: later deliveries are acknowledged at once.
async fn record(state: &AppState, event_id: &str, kind: &str) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO processed_events (event_id, event_type) VALUES ($1, $2)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(kind)
    .execute(&state.db)
    .await?;
    Ok(())
}
