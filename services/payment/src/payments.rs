//! Charges and refunds for the order service (`souk_contract::payments`).
//!
//! One `payments` row per order. Every Stripe call for an order carries an idempotency key
//! derived from the order id, so a retry (after a timeout, a crash, or on another replica)
//! replays Stripe's first answer instead of charging twice.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use souk_common::error::parse_id;
use souk_common::{ApiError, ApiResult, FieldError, Json};
use souk_contract::ErrorCode;
use souk_contract::payments::{ChargeRequest, Payment, PaymentStatus};
use sqlx::PgPool;
use uuid::Uuid;

use crate::AppState;
use crate::stripe::{ChargeOutcome, IntentState, StripeCallError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/payments", post(charge))
        .route("/internal/payments/{order_id}", get(show))
        .route("/internal/payments/{order_id}/refund", post(refund))
        .route("/internal/payments/{order_id}/sync", post(sync))
        .route("/internal/payments/{order_id}/cancel", post(cancel))
}

pub fn charge_key(order_id: Uuid) -> String {
    format!("souk-order-{order_id}-charge")
}

pub fn refund_key(order_id: Uuid) -> String {
    format!("souk-order-{order_id}-refund")
}

#[derive(sqlx::FromRow)]
struct Row {
    order_id: Uuid,
    amount_cents: i64,
    amount_refunded_cents: i64,
    currency: String,
    payment_method: String,
    status: PaymentStatus,
    payment_intent_id: Option<String>,
    client_secret: Option<String>,
    next_action: Option<sqlx::types::Json<serde_json::Value>>,
    failure_code: Option<String>,
    failure_message: Option<String>,
}

impl From<Row> for Payment {
    fn from(row: Row) -> Self {
        Payment {
            order_id: row.order_id,
            // Recorded but Stripe's answer not known yet: to the caller, it is in progress.
            status: match row.status {
                PaymentStatus::Pending => PaymentStatus::Processing,
                status => status,
            },
            payment_intent_id: row.payment_intent_id,
            client_secret: row.client_secret,
            next_action: row.next_action.map(|a| a.0),
            amount_cents: row.amount_cents,
            amount_refunded_cents: row.amount_refunded_cents,
            currency: row.currency,
            failure_code: row.failure_code,
            failure_message: row.failure_message,
        }
    }
}

const COLUMNS: &str = "order_id, amount_cents, amount_refunded_cents, currency, payment_method, status, \
                       payment_intent_id, client_secret, next_action, failure_code, failure_message";

async fn load(db: &PgPool, order_id: Uuid) -> ApiResult<Option<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1"
    )))
    .bind(order_id)
    .fetch_optional(db)
    .await?)
}

/// The checks of a charge request, before anything is recorded or sent to Stripe.
fn validate(req: &ChargeRequest) -> ApiResult<()> {
    let mut errors = Vec::new();
    if req.amount_cents < 1 {
        errors.push(FieldError::new("amount_cents", "must be at least 1"));
    }
    if req.currency.len() != 3 || !req.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        errors.push(FieldError::new(
            "currency",
            "must be a lowercase ISO 4217 code, e.g. \"usd\"",
        ));
    }
    let pm = req.payment_method.trim();
    if pm.is_empty() || pm.len() > 255 || pm.chars().any(char::is_whitespace) {
        errors.push(FieldError::new(
            "payment_method",
            "must be a Stripe PaymentMethod id, e.g. \"pm_card_visa\"",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Charges an order once. Retrying with the same body returns the real state, never a second
/// charge; the same order with another amount, currency or payment method is 409.
#[tracing::instrument(skip_all)]
async fn charge(
    State(state): State<AppState>,
    Json(req): Json<ChargeRequest>,
) -> ApiResult<Json<Payment>> {
    validate(&req)?;
    let payment_method = req.payment_method.trim();
    let inserted: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payments (order_id, amount_cents, currency, payment_method)
         VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(req.order_id)
    .bind(req.amount_cents)
    .bind(&req.currency)
    .bind(payment_method)
    .fetch_optional(&state.db)
    .await?;
    // A replay: the payment recorded the first time.
    let row = match inserted {
        Some(row) => row,
        None => load(&state.db, req.order_id)
            .await?
            .ok_or_else(|| ApiError::internal("payment row vanished after insert"))?,
    };
    if row.amount_cents != req.amount_cents
        || row.currency != req.currency
        || row.payment_method != payment_method
    {
        return Err(ApiError::conflict(
            ErrorCode::IdempotencyKeyReused,
            "this order was already charged with another amount, currency or payment method",
        ));
    }
    // A final answer is already known: no need to ask Stripe again.
    if matches!(
        row.status,
        PaymentStatus::Succeeded | PaymentStatus::Failed | PaymentStatus::Refunded
    ) {
        return Ok(Json(row.into()));
    }

    let outcome = state
        .stripe
        .charge(
            &charge_key(req.order_id),
            req.order_id,
            req.amount_cents,
            &req.currency,
            payment_method,
        )
        .await;
    let mut action: (Option<String>, Option<serde_json::Value>) = (None, None);
    let (status, pi, code, message) = match outcome {
        Ok(ChargeOutcome::Succeeded { payment_intent_id }) => (
            PaymentStatus::Succeeded,
            Some(payment_intent_id),
            None,
            None,
        ),
        Ok(ChargeOutcome::Processing { payment_intent_id }) => (
            PaymentStatus::Processing,
            Some(payment_intent_id),
            None,
            None,
        ),
        Ok(ChargeOutcome::RequiresAction {
            payment_intent_id,
            client_secret,
            next_action,
        }) => {
            action = (client_secret, next_action);
            (
                PaymentStatus::RequiresAction,
                Some(payment_intent_id),
                None,
                None,
            )
        }
        Ok(ChargeOutcome::Declined {
            payment_intent_id,
            code,
            decline_code,
            message,
        }) => {
            tracing::info!(order_id = %req.order_id, %code, ?decline_code, "card declined");
            (
                PaymentStatus::Failed,
                payment_intent_id,
                Some(code),
                Some(message),
            )
        }
        // Stripe refused the payment method (unknown id, unusable card): a final answer,
        // the payment failed.
        Err(StripeCallError::Rejected {
            status: 400..=404,
            code,
            message,
            ..
        }) => (
            PaymentStatus::Failed,
            None,
            Some(code.unwrap_or_else(|| "payment_method_invalid".to_owned())),
            Some(message),
        ),
        Err(e) => return Err(stripe_error(e)),
    };
    // Never move a payment back from a final state a webhook may have set meanwhile.
    let updated: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = $2, payment_intent_id = COALESCE($3, payment_intent_id),
                failure_code = $4, failure_message = $5, client_secret = $6, next_action = $7,
                status_from_webhook = false, updated_at = now()
         WHERE order_id = $1 AND status IN ('pending', 'processing', 'requires_action')
         RETURNING {COLUMNS}"
    )))
    .bind(req.order_id)
    .bind(status)
    .bind(&pi)
    .bind(&code)
    .bind(&message)
    .bind(&action.0)
    .bind(action.1.map(sqlx::types::Json))
    .fetch_optional(&state.db)
    .await?;
    tracing::info!(order_id = %req.order_id, %status, payment_intent_id = ?pi, "charge");
    let row = match updated {
        Some(row) => row,
        None => load(&state.db, req.order_id)
            .await?
            .ok_or_else(|| ApiError::internal("payment row vanished"))?,
    };
    Ok(Json(row.into()))
}

#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Payment>> {
    let (_, row) = existing(&state.db, &order_id).await?;
    Ok(Json(row.into()))
}

/// The payment of the order named in a path, or 404.
async fn existing(db: &PgPool, order_id: &str) -> ApiResult<(Uuid, Row)> {
    let order_id = parse_id(order_id, "payment")?;
    let row = load(db, order_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no payment for this order"))?;
    Ok((order_id, row))
}

/// What a PaymentIntent's state means for a payment; None: still undecided.
fn settled_status(intent: &IntentState) -> Option<PaymentStatus> {
    match intent {
        IntentState::Succeeded => Some(PaymentStatus::Succeeded),
        // Authentication failed or the card was declined on a later attempt.
        IntentState::RequiresPaymentMethod => Some(PaymentStatus::Failed),
        IntentState::Canceled => Some(PaymentStatus::Canceled),
        _ => None,
    }
}

/// Records a final state learnt from Stripe, unless the payment is already final.
async fn settle(db: &PgPool, order_id: Uuid, status: PaymentStatus) -> ApiResult<Row> {
    sqlx::query(
        "UPDATE payments SET status = $2,
                failure_code = CASE WHEN $2 = 'failed' THEN COALESCE(failure_code, 'payment_failed') END,
                status_from_webhook = false, updated_at = now()
         WHERE order_id = $1 AND status IN ('pending', 'processing', 'requires_action')",
    )
    .bind(order_id)
    .bind(status)
    .execute(db)
    .await?;
    tracing::info!(%order_id, %status, "payment settled from Stripe");
    load(db, order_id)
        .await?
        .ok_or_else(|| ApiError::internal("payment row vanished"))
}

fn undecided(row: &Row) -> bool {
    matches!(
        row.status,
        PaymentStatus::Pending | PaymentStatus::Processing | PaymentStatus::RequiresAction
    )
}

/// Asks Stripe for an undecided payment's state (when no webhook came) and records it.
#[tracing::instrument(skip_all)]
async fn sync(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Payment>> {
    let (order_id, row) = existing(&state.db, &order_id).await?;
    let Some(pi) = row.payment_intent_id.clone().filter(|_| undecided(&row)) else {
        return Ok(Json(row.into()));
    };
    let intent = state.stripe.retrieve(&pi).await.map_err(stripe_error)?;
    match settled_status(&intent) {
        Some(status) => Ok(Json(settle(&state.db, order_id, status).await?.into())),
        None => Ok(Json(row.into())),
    }
}

/// Calls off a payment still waiting (for the shopper, say) at Stripe. One that succeeded
/// meanwhile cannot be: the answer then says `succeeded`, and the caller refunds it.
#[tracing::instrument(skip_all)]
async fn cancel(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Payment>> {
    let (order_id, row) = existing(&state.db, &order_id).await?;
    if !undecided(&row) {
        return Ok(Json(row.into()));
    }
    let Some(pi) = row.payment_intent_id.clone() else {
        // The charge's answer was never saved: replaying the charge learns the PaymentIntent.
        return Err(
            ApiError::unavailable("this payment's PaymentIntent is not known yet")
                .with_retry_after(1),
        );
    };
    let intent = match state.stripe.cancel(&pi).await {
        Ok(intent) => intent,
        // Not cancellable any more (it succeeded or was cancelled): ask what it is.
        Err(StripeCallError::Rejected { .. }) => {
            state.stripe.retrieve(&pi).await.map_err(stripe_error)?
        }
        Err(e) => return Err(stripe_error(e)),
    };
    match settled_status(&intent) {
        Some(status) => Ok(Json(settle(&state.db, order_id, status).await?.into())),
        None => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::UpstreamError,
            format!("PaymentIntent {pi} is neither cancelled nor settled: {intent:?}"),
        )),
    }
}

/// Refunds what is left of an order's payment (a partial refund made in the Stripe dashboard
/// is not refunded twice). Idempotent: a refunded payment answers as it is.
#[tracing::instrument(skip_all)]
async fn refund(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Payment>> {
    let (order_id, row) = existing(&state.db, &order_id).await?;
    if row.status == PaymentStatus::Refunded {
        return Ok(Json(row.into()));
    }
    let (true, Some(pi)) = (
        row.status == PaymentStatus::Succeeded,
        row.payment_intent_id.clone(),
    ) else {
        return Err(ApiError::conflict(
            ErrorCode::NotRefundable,
            format!("a {} payment cannot be refunded", Payment::from(row).status),
        ));
    };
    // Asked of Stripe, not of our records: a dashboard refund's webhook may not be here yet.
    let already = state
        .stripe
        .amount_refunded(&pi)
        .await
        .map_err(stripe_error)?;
    let remainder = row.amount_cents - already;
    let refund_id = if remainder <= 0 {
        None
    } else {
        // The key names the amount: the same remainder replays, a new one is a new refund.
        let key = format!("{}-{remainder}", refund_key(order_id));
        match state.stripe.refund(&key, &pi, Some(remainder)).await {
            Ok(id) => Some(id),
            // Refunded elsewhere meanwhile: the outcome is the same.
            Err(StripeCallError::Rejected { code: Some(c), .. })
                if c == "charge_already_refunded" =>
            {
                None
            }
            Err(StripeCallError::Rejected { message, .. }) => {
                return Err(ApiError::conflict(ErrorCode::NotRefundable, message));
            }
            Err(e) => return Err(stripe_error(e)),
        }
    };
    sqlx::query(
        "UPDATE payments SET status = 'refunded', refund_id = COALESCE($2, refund_id),
                amount_refunded_cents = amount_cents, status_from_webhook = false, updated_at = now()
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(&refund_id)
    .execute(&state.db)
    .await?;
    tracing::info!(%order_id, refund_id = ?refund_id, remainder, "refund");
    let row = load(&state.db, order_id)
        .await?
        .ok_or_else(|| ApiError::internal("payment row vanished"))?;
    Ok(Json(row.into()))
}

/// What a failed Stripe call means for the caller.
fn stripe_error(e: StripeCallError) -> ApiError {
    tracing::warn!(error = %e, "Stripe call failed");
    match e {
        e if e.is_retryable() => {
            ApiError::unavailable("Stripe is unavailable, try again shortly").with_retry_after(1)
        }
        StripeCallError::IdempotencyKeyReused(_) => ApiError::conflict(
            ErrorCode::IdempotencyKeyReused,
            "this order was already charged with other parameters",
        ),
        StripeCallError::Rejected { message, .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::UpstreamError, message)
        }
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::UpstreamError,
            format!("unexpected answer from Stripe: {other}"),
        ),
    }
}
