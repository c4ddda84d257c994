//! The checkout saga. Each step's outcome is saved before the next begins, and every remote
//! step is idempotent (keyed by the order id), so `advance` can resume from any saved state:
//! the checkout request drives it first, the recovery loop finishes what a crash left behind.
//!
//! claiming -> reserving -> charging -> completing -> done   (paid)
//! claiming: the shopper's cart is claimed (one checkout per cart); a cart that is empty or
//! held by another running checkout removes the order (409), nothing else was touched. The
//! cart's promotion code is redeemed in the transaction that moves the order to `reserving`
//! (a code no longer usable removes the order: 409); a total of 0 skips the charge.
//! A status change to `payment_failed` or `cancelled` gives the redemption back in the same
//! statement (a trigger, see the promotions migration); a removed order takes it along.
//!                       -> releasing  -> done           (declined: stock returned)
//!                       -> awaiting_payment -> completing | releasing
//!                              (3-D Secure: the webhook, or polling Stripe, decides; the stock
//!                              is held for the payment window)
//!                          -> cancelling -> releasing | refunding
//!                              (window over, or the shopper cancels: the PaymentIntent is
//!                              cancelled at Stripe first; one that succeeded anyway is refunded)
//! paid: refunding -> done                               (cancelled: refunded, stock back)

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use souk_common::ApiError;
use souk_common::client::CallError;
use souk_contract::ErrorCode;
use souk_contract::payments::{ConfirmationLine, OrderConfirmation};
use souk_contract::promotions::QuoteLine;
use uuid::Uuid;

use crate::clients::{RequestedItem, ReservedLine};
use crate::discount::{self, Kind};
use crate::model::{self, OrderRow};
use crate::redeem::{self, Refusal};
use crate::state::{Mover, OrderStatus, PaymentStatus, SagaState};
use crate::{AppState, FaultPoint};

/// Who is driving: the checkout request itself, or the recovery loop after a crash.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Driver {
    Request,
    Recovery,
}

#[derive(Debug)]
pub enum Stop {
    /// The saga reached `done` or waits for the payment provider.
    Settled,
    /// The order could not be placed and was removed: nothing reserved, nothing charged.
    Rejected(ApiError),
    /// A service was unreachable; the saved state lets a later attempt continue.
    Interrupted(ApiError),
}

fn interrupted(e: CallError) -> Stop {
    Stop::Interrupted(e.into())
}

/// A 4xx that asking again will not change (408 and 429 are worth a retry).
fn is_permanent_refusal(status: StatusCode) -> bool {
    status.is_client_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
}

fn db_failed(e: impl Into<ApiError>) -> Stop {
    Stop::Interrupted(e.into())
}

/// Refuses a move that the transition table (`state.rs`) does not allow, from the state the
/// saga read: that is a bug, so the order stays where it is (the step ends as interrupted, an
/// internal error) rather than reaching a combination nothing else expects.
fn checked(
    row: &OrderRow,
    from: SagaState,
    to: SagaState,
    status: Option<OrderStatus>,
) -> Result<(), Stop> {
    let status_allowed =
        status.is_none_or(|to| to == row.status || row.status.move_to(to) == Some(Mover::Saga));
    if from.can_become(to) && status_allowed {
        return Ok(());
    }
    let status = status.map(|s| format!(", status {} -> {s}", row.status));
    Err(Stop::Interrupted(ApiError::internal(format!(
        "order {}: the saga may not move {from} -> {to}{}",
        row.id,
        status.unwrap_or_default()
    ))))
}

/// The order's row after a step, when the step's own write returned it (`RETURNING`): the
/// saga goes on from it without reading the order again. `None`: read it again (nothing was
/// written, or somebody else moved the order).
type Next = Option<OrderRow>;

/// `RETURNING` the columns of [`OrderRow`].
macro_rules! returning_row {
    () => {
        concat!(" RETURNING ", crate::order_columns!())
    };
}

/// Moves the saga from `from` to `to`, setting the status and the payment's status where
/// given, only if nobody else moved it.
async fn transition(
    state: &AppState,
    row: &OrderRow,
    from: SagaState,
    to: SagaState,
    status: Option<OrderStatus>,
    payment: Option<PaymentStatus>,
) -> Result<Next, Stop> {
    checked(row, from, to, status)?;
    sqlx::query_as(concat!(
        "UPDATE orders SET saga_state = $3, status = COALESCE($4, status),
           payment_status = COALESCE($5, payment_status), updated_at = now()
         WHERE id = $1 AND saga_state = $2",
        returning_row!()
    ))
    .bind(row.id)
    .bind(from)
    .bind(to)
    .bind(status)
    .bind(payment)
    .fetch_optional(&state.db)
    .await
    .map_err(db_failed)
}

/// Nothing was taken and nothing will be: the order is cancelled, its payment marked
/// cancelled, and the saga goes on to release the stock.
async fn give_up(state: &AppState, row: &OrderRow, from: SagaState) -> Result<Next, Stop> {
    transition(
        state,
        row,
        from,
        SagaState::Releasing,
        Some(OrderStatus::Cancelled),
        Some(PaymentStatus::Canceled),
    )
    .await
}

pub async fn advance(state: &AppState, id: Uuid, driver: Driver) -> Stop {
    drive(state, id, driver).await.0
}

/// Advances the saga as far as it goes; with the stop, the order's row as the last step left
/// it, when that step returned it (the checkout answers with it without reading it again).
#[tracing::instrument(name = "advance", skip_all, fields(order_id = %id, ?driver))]
pub async fn drive(state: &AppState, id: Uuid, driver: Driver) -> (Stop, Next) {
    let mut next: Next = None;
    loop {
        let row = match next.take() {
            Some(row) => row,
            None => match model::row(&state.db, id).await {
                Ok(Some(row)) => row,
                Ok(None) => return (Stop::Settled, None),
                Err(e) => return (Stop::Interrupted(e), None),
            },
        };
        let step = match row.saga_state {
            SagaState::Claiming => match driver {
                Driver::Request => claim(state, &row).await,
                Driver::Recovery => Err(abandon_claim(state, &row).await),
            },
            SagaState::Reserving => reserve(state, &row).await,
            SagaState::Charging => charge(state, &row, driver).await,
            // The webhook settles it; only the recovery loop asks Stripe.
            SagaState::AwaitingPayment => match driver {
                Driver::Request => return (Stop::Settled, Some(row)),
                Driver::Recovery => check_payment(state, &row).await,
            },
            SagaState::Cancelling => cancel_payment(state, &row).await,
            SagaState::Completing => complete(state, &row).await,
            SagaState::Releasing => release(state, &row).await,
            SagaState::Refunding => refund(state, &row).await,
            SagaState::Done => return (Stop::Settled, Some(row)),
        };
        match step {
            Ok(moved) => next = moved,
            Err(stop) => return (stop, None),
        }
    }
}

#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn claim(state: &AppState, row: &OrderRow) -> Result<Next, Stop> {
    // Twice at most: the second time after releasing a stale claim left by a dead order.
    for _ in 0..2 {
        let claim = match state.clients.claim_cart(row.user_id, row.id).await {
            Ok(c) => c,
            Err(CallError::Api(e)) if e.status.is_client_error() => {
                return Err(remove(state, row, e).await);
            }
            Err(e) => return Err(interrupted(e)),
        };
        if claim.order_id == row.id {
            let items: Vec<_> = claim.items.into_iter().filter(|i| i.quantity > 0).collect();
            return start_reserving(state, row, items, claim.promotion_code).await;
        }
        let holder_running: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1 AND saga_state <> $2)",
        )
        .bind(claim.order_id)
        .bind(SagaState::Done)
        .fetch_one(&state.db)
        .await
        .map_err(db_failed)?;
        if holder_running {
            break;
        }
        tracing::warn!(order_id = %row.id, stale = %claim.order_id, "releasing a stale cart claim");
        state
            .clients
            .release_cart(row.user_id, claim.order_id)
            .await
            .map_err(interrupted)?;
    }
    let busy = ApiError::conflict(
        ErrorCode::CheckoutInProgress,
        "another checkout of this cart is in progress; wait for it to finish",
    );
    Err(remove(state, row, busy).await)
}

/// The cart is this order's: save its lines and, if it carries a promotion code, redeem the
/// code in the same transaction, before anything is reserved or charged. A code that stopped
/// applying removes the order: 409 `promotion_unavailable`, the cart given back.
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn start_reserving(
    state: &AppState,
    row: &OrderRow,
    items: Vec<RequestedItem>,
    code: Option<String>,
) -> Result<Next, Stop> {
    checked(row, SagaState::Claiming, SagaState::Reserving, None)?;
    let Some(code) = code else {
        return move_to_reserving(&state.db, row, &items, None).await;
    };
    let lines = priced(state, &items).await?;
    let mut tx = state.db.begin().await.map_err(db_failed)?;
    let applied = match redeem::redeem(&mut tx, &code, row.user_id, row.id, &lines)
        .await
        .map_err(db_failed)?
    {
        Ok(applied) => applied,
        Err(refusal) => {
            drop(tx);
            let reason = match refusal {
                Refusal::Unknown => "not_found",
                Refusal::NotApplicable(reason, _) => reason,
            };
            tracing::info!(order_id = %row.id, reason, "promotion unavailable at checkout");
            let e = ApiError::conflict(
                ErrorCode::PromotionUnavailable,
                format!("the cart's promotion code can no longer be used ({reason}); remove it or try another"),
            )
            .with_extra("reason", json!(reason));
            return Err(remove(state, row, e).await);
        }
    };
    let moved = move_to_reserving(&mut *tx, row, &items, Some(applied.promotion.code)).await?;
    // Someone else moved the order on: their outcome stands, this redemption is not made.
    if moved.is_some() {
        tx.commit().await.map_err(db_failed)?;
    }
    Ok(moved)
}

/// Saves the claimed lines (and the redeemed code) and moves the order to `reserving`.
async fn move_to_reserving<'e>(
    db: impl sqlx::PgExecutor<'e>,
    row: &OrderRow,
    items: &[RequestedItem],
    applied_code: Option<String>,
) -> Result<Next, Stop> {
    sqlx::query_as(concat!(
        "UPDATE orders SET saga_state = $5, requested_items = $2, promotion_code = $3,
           updated_at = now()
         WHERE id = $1 AND saga_state = $4",
        returning_row!()
    ))
    .bind(row.id)
    .bind(sqlx::types::Json(items))
    .bind(applied_code)
    .bind(SagaState::Claiming)
    .bind(SagaState::Reserving)
    .fetch_optional(db)
    .await
    .map_err(db_failed)
}

/// The cart's lines at current catalog prices, with their categories, for the promotion.
async fn priced(state: &AppState, items: &[RequestedItem]) -> Result<Vec<QuoteLine>, Stop> {
    let ids: Vec<Uuid> = items.iter().map(RequestedItem::variant).collect();
    let catalog = state.clients.catalog(&ids).await.map_err(interrupted)?;
    Ok(items
        .iter()
        .filter_map(|i| {
            let p = catalog.iter().find(|p| p.id == i.variant())?;
            Some(QuoteLine {
                product_id: p.product_id,
                quantity: i64::from(i.quantity),
                unit_price_cents: p.price_cents,
                category_ids: p.category_ids.clone(),
            })
        })
        .collect())
}

/// A checkout that died while claiming: the shopper is gone, so give the cart back.
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn abandon_claim(state: &AppState, row: &OrderRow) -> Stop {
    remove(
        state,
        row,
        ApiError::conflict(ErrorCode::CheckoutAbandoned, "the checkout was interrupted"),
    )
    .await
}

#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn reserve(state: &AppState, row: &OrderRow) -> Result<Next, Stop> {
    let reservation = match state.clients.reserve(row.id, &row.requested_items).await {
        Ok(r) if r.status != "released" => r,
        // Expired before we got here (a very late recovery): nothing is held any more.
        Ok(_) => {
            return Err(remove(
                state,
                row,
                ApiError::conflict(
                    ErrorCode::InsufficientStock,
                    "the stock reservation expired",
                ),
            )
            .await);
        }
        Err(CallError::Api(e)) if e.status == 409 || e.status == 404 || e.status == 422 => {
            return Err(remove(state, row, e).await);
        }
        Err(e) => return Err(interrupted(e)),
    };
    let next = save_lines(state, row, &reservation.lines).await?;
    crash_at(state, FaultPoint::AfterReservation, row.id)?;
    Ok(next)
}

/// Test-only: stops here, once, as if the process had died (`Config::fault`).
pub fn crash_at(state: &AppState, point: FaultPoint, id: Uuid) -> Result<(), Stop> {
    if state.config.fault == Some(point) && !state.fault_fired.swap(true, Ordering::SeqCst) {
        tracing::error!(order_id = %id, ?point, "fault injected: crashing here");
        return Err(Stop::Interrupted(ApiError::internal(format!(
            "injected crash: {point:?}"
        ))));
    }
    Ok(())
}

/// Removes an order that never reserved anything, giving the cart back first; its
/// idempotency key becomes free again.
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn remove(state: &AppState, row: &OrderRow, reason: ApiError) -> Stop {
    if let Err(e) = state.clients.release_cart(row.user_id, row.id).await {
        return interrupted(e);
    }
    match sqlx::query("DELETE FROM orders WHERE id = $1 AND saga_state = ANY($2)")
        .bind(row.id)
        .bind(SagaState::REMOVABLE)
        .execute(&state.db)
        .await
    {
        Ok(_) => Stop::Rejected(reason),
        Err(e) => db_failed(e),
    }
}

/// Prices come from the product service's reservation, never from the client or the cart.
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn save_lines(
    state: &AppState,
    row: &OrderRow,
    lines: &[ReservedLine],
) -> Result<Next, Stop> {
    checked(row, SagaState::Reserving, SagaState::Charging, None)?;
    let id = row.id;
    let currency = lines
        .first()
        .map(|l| l.currency.clone())
        .unwrap_or_else(|| "usd".to_owned());
    let subtotal: i64 = lines.iter().map(|l| l.unit_price_cents * l.quantity).sum();
    // No transaction: every statement here is idempotent and the last one moves the saga, so
    // a crash in between repeats them all (the reservation replays its lines).
    // The redeemed promotion's discount, on the reserved prices, shared among its lines (an
    // order without a code has no redemption: `start_reserving` saves the code with it).
    let redemption: Option<(String, i64, Vec<Uuid>)> = match row.promotion_code {
        None => None,
        Some(_) => sqlx::query_as(
            "SELECT p.kind, p.value, r.eligible_product_ids FROM redemptions r
             JOIN promotions p ON p.id = r.promotion_id
             WHERE r.order_id = $1 AND r.state = 'redeemed'",
        )
        .bind(id)
        .fetch_optional(&state.db)
        .await
        .map_err(db_failed)?,
    };
    let (discount, shares) = match redemption
        .as_ref()
        .and_then(|(kind, value, eligible)| Some((Kind::parse(kind)?, *value, eligible)))
    {
        Some((kind, value, eligible)) => {
            let totals: Vec<(i64, bool)> = lines
                .iter()
                .map(|l| {
                    let total = l.unit_price_cents * l.quantity;
                    (total, eligible.contains(&l.product_id))
                })
                .collect();
            discount::allocate(kind, value, &totals)
        }
        None => (0, vec![0; lines.len()]),
    };
    if redemption.is_some() {
        sqlx::query("UPDATE redemptions SET discount_cents = $2 WHERE order_id = $1")
            .bind(id)
            .bind(discount)
            .execute(&state.db)
            .await
            .map_err(db_failed)?;
    }
    // The lines and the move to `charging` in one statement.
    sqlx::query_as(concat!(
        "WITH lines AS (
           INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price_cents,
                                    line_total_cents, discount_cents, variant_id, option_values)
           SELECT $1, * FROM unnest($7::uuid[], $8::text[], $9::text[], $10::bigint[],
                                    $11::bigint[], $12::bigint[], $13::bigint[], $14::uuid[],
                                    $15::jsonb[])
           ON CONFLICT DO NOTHING)
         UPDATE orders SET saga_state = $6, currency = $2, subtotal_cents = $3,
           discount_cents = $4, total_cents = $3 - $4, updated_at = now()
         WHERE id = $1 AND saga_state = $5",
        returning_row!()
    ))
    .bind(id)
    .bind(&currency)
    .bind(subtotal)
    .bind(discount)
    .bind(SagaState::Reserving)
    .bind(SagaState::Charging)
    .bind(lines.iter().map(|l| l.product_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.sku.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.unit_price_cents).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|l| l.unit_price_cents * l.quantity)
            .collect::<Vec<_>>(),
    )
    .bind(&shares)
    .bind(lines.iter().map(ReservedLine::variant).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|l| sqlx::types::Json(&l.option_values))
            .collect::<Vec<_>>(),
    )
    .fetch_optional(&state.db)
    .await
    .map_err(db_failed)
}

#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn charge(state: &AppState, row: &OrderRow, driver: Driver) -> Result<Next, Stop> {
    if row.total_cents == Some(0) {
        // Nothing to pay (a 100 % discount): no PaymentIntent (Stripe refuses 0 anyway); the
        // order is paid as it is and completes like any other, e-mail included.
        return transition(
            state,
            row,
            SagaState::Charging,
            SagaState::Completing,
            Some(OrderStatus::Paid),
            Some(PaymentStatus::NotRequired),
        )
        .await;
    }
    if driver == Driver::Recovery {
        // Ask before charging: if no charge was ever attempted, the shopper is gone and nothing
        // was taken, so give the stock back instead of charging now.
        match state.clients.payment(row.id).await {
            Ok(None) => return give_up(state, row, SagaState::Charging).await,
            Ok(Some(_)) => {}
            Err(e) => return Err(interrupted(e)),
        }
    }
    let amount = row.total_cents.unwrap_or(0);
    let currency = row.currency.as_deref().unwrap_or("usd");
    if state.config.fault == Some(FaultPoint::ChargeUnanswered)
        && !state.fault_fired.load(Ordering::SeqCst)
    {
        // The request goes out, but this process "dies" before the answer arrives.
        let (clients, id, pm) = (state.clients.clone(), row.id, row.payment_method.clone());
        let currency = currency.to_owned();
        tokio::spawn(async move { clients.charge(id, amount, &currency, &pm).await });
        crash_at(state, FaultPoint::ChargeUnanswered, row.id)?;
    }
    // Replaying the same charge returns the real state of the one PaymentIntent for this order.
    let payment = match state
        .clients
        .charge(row.id, amount, currency, &row.payment_method)
        .await
    {
        Ok(p) => p,
        Err(CallError::Api(e)) if e.status.is_client_error() => {
            record_failure(state, row, SagaState::Charging, None, e.code.as_str()).await?;
            return Ok(None);
        }
        Err(e) => return Err(interrupted(e)),
    };
    crash_at(state, FaultPoint::AfterCharge, row.id)?;
    let next = apply_payment(state, row, SagaState::Charging, &payment).await?;
    if payment.status == PaymentStatus::Succeeded {
        crash_at(state, FaultPoint::AfterPaid, row.id)?;
    }
    Ok(next)
}

/// Applies a payment's outcome to an order waiting in `from`.
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn apply_payment(
    state: &AppState,
    row: &OrderRow,
    from: SagaState,
    payment: &crate::clients::Payment,
) -> Result<Next, Stop> {
    let id = row.id;
    match payment.status {
        PaymentStatus::Succeeded => {
            let to = SagaState::Completing;
            checked(row, from, to, Some(OrderStatus::Paid))?;
            let moved: Next = sqlx::query_as(concat!(
                "UPDATE orders SET saga_state = $4, status = $5, payment_status = $6,
                   payment_intent_id = $3, updated_at = now()
                 WHERE id = $1 AND saga_state = $2",
                returning_row!()
            ))
            .bind(id)
            .bind(from)
            .bind(&payment.payment_intent_id)
            .bind(to)
            .bind(OrderStatus::Paid)
            .bind(payment.status)
            .fetch_optional(&state.db)
            .await
            .map_err(db_failed)?;
            tracing::info!(order_id = %id, moved = moved.is_some(), "paid");
            Ok(moved)
        }
        PaymentStatus::Failed => {
            let code = payment
                .failure_code
                .clone()
                .unwrap_or_else(|| "card_declined".into());
            record_failure(state, row, from, payment.payment_intent_id.clone(), &code).await?;
            Ok(None)
        }
        other => {
            // The shopper must act (3-D Secure): hold the stock past the payment window, so
            // the sweeper never resells it before the window's end cancels the PaymentIntent.
            let hold = state.config.payment_window + RESERVATION_MARGIN;
            match state.clients.extend_reservation(id, hold.as_secs()).await {
                Ok(_) => {}
                // The stock is gone already (a very late answer): call the payment off.
                Err(CallError::Api(e)) if e.status == 409 => {
                    checked(row, from, SagaState::Cancelling, None)?;
                    sqlx::query(
                        "UPDATE orders SET saga_state = $4, payment_intent_id = $3,
                           failure_code = 'reservation_expired', updated_at = now()
                         WHERE id = $1 AND saga_state = $2",
                    )
                    .bind(id)
                    .bind(from)
                    .bind(&payment.payment_intent_id)
                    .bind(SagaState::Cancelling)
                    .execute(&state.db)
                    .await
                    .map_err(db_failed)?;
                    return Ok(None);
                }
                Err(e) => return Err(interrupted(e)),
            }
            checked(row, from, SagaState::AwaitingPayment, None)?;
            sqlx::query(
                "UPDATE orders SET saga_state = $9, payment_status = $3,
                   payment_intent_id = $4, payment_client_secret = $5, payment_next_action = $6,
                   payment_deadline = COALESCE(payment_deadline, now() + make_interval(secs => $7)),
                   payment_checks = 0, lease_until = now() + make_interval(secs => $8),
                   updated_at = now()
                 WHERE id = $1 AND saga_state = $2",
            )
            .bind(id)
            .bind(from)
            .bind(other)
            .bind(&payment.payment_intent_id)
            .bind(&payment.client_secret)
            .bind(payment.next_action.clone().map(sqlx::types::Json))
            .bind(state.config.payment_window.as_secs_f64())
            .bind(state.config.payment_poll.as_secs_f64())
            .bind(SagaState::AwaitingPayment)
            .execute(&state.db)
            .await
            .map_err(db_failed)?;
            // The webhook (or a later poll) settles it; stop driving until then.
            Err(Stop::Settled)
        }
    }
}

/// How much longer than the payment window the stock is held: time for the recovery loop
/// (lease, poll interval) to cancel the PaymentIntent before the stock can be swept.
const RESERVATION_MARGIN: Duration = Duration::from_secs(600);
/// The longest wait between two polls of Stripe for one waiting payment.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn record_failure(
    state: &AppState,
    row: &OrderRow,
    from: SagaState,
    intent: Option<String>,
    code: &str,
) -> Result<(), Stop> {
    let (id, to, status) = (row.id, SagaState::Releasing, OrderStatus::PaymentFailed);
    checked(row, from, to, Some(status))?;
    sqlx::query(
        "UPDATE orders SET saga_state = $5, status = $6, payment_status = $7,
           payment_intent_id = COALESCE($3, payment_intent_id), failure_code = $4, updated_at = now()
         WHERE id = $1 AND saga_state = $2",
    )
    .bind(id)
    .bind(from)
    .bind(intent)
    .bind(code)
    .bind(to)
    .bind(status)
    .bind(PaymentStatus::Failed)
    .execute(&state.db)
    .await
    .map_err(db_failed)?;
    tracing::info!(order_id = %id, code, "payment failed");
    Ok(())
}

/// Recovery of an order waiting on the provider: past its payment window it is cancelled;
/// otherwise Stripe is asked (no webhook came), and asked again later, less and less often.
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn check_payment(state: &AppState, row: &OrderRow) -> Result<Next, Stop> {
    checked(row, SagaState::AwaitingPayment, SagaState::Cancelling, None)?;
    let expired = sqlx::query(
        "UPDATE orders SET saga_state = $3, failure_code = 'payment_expired', updated_at = now()
         WHERE id = $1 AND saga_state = $2 AND payment_deadline <= now()",
    )
    .bind(row.id)
    .bind(SagaState::AwaitingPayment)
    .bind(SagaState::Cancelling)
    .execute(&state.db)
    .await
    .map_err(db_failed)?;
    if expired.rows_affected() == 1 {
        tracing::info!(order_id = %row.id, "payment window over; cancelling the payment");
        return Ok(None);
    }
    let payment = state
        .clients
        .sync_payment(row.id)
        .await
        .map_err(interrupted)?;
    match payment.status {
        PaymentStatus::Succeeded | PaymentStatus::Failed => {
            apply_payment(state, row, SagaState::AwaitingPayment, &payment).await
        }
        // Cancelled at Stripe by someone else (the dashboard): nothing will be paid.
        PaymentStatus::Canceled => give_up(state, row, SagaState::AwaitingPayment).await,
        _ => {
            sqlx::query(
                "UPDATE orders SET payment_checks = payment_checks + 1,
                   lease_until = now() + make_interval(secs => least($2 * power(2, payment_checks), $3))
                 WHERE id = $1 AND saga_state = $4",
            )
            .bind(row.id)
            .bind(state.config.payment_poll.as_secs_f64())
            .bind(MAX_POLL_INTERVAL.as_secs_f64())
            .bind(SagaState::AwaitingPayment)
            .execute(&state.db)
            .await
            .map_err(db_failed)?;
            Err(Stop::Settled)
        }
    }
}

/// The payment window is over or the shopper cancelled: cancel the PaymentIntent at Stripe
/// before anything is released. If it succeeded meanwhile, the money goes back (refunding).
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn cancel_payment(state: &AppState, row: &OrderRow) -> Result<Next, Stop> {
    let payment = state
        .clients
        .cancel_payment(row.id)
        .await
        .map_err(interrupted)?;
    if payment
        .as_ref()
        .is_some_and(|p| p.status == PaymentStatus::Succeeded)
    {
        tracing::warn!(order_id = %row.id, "the payment succeeded before it could be cancelled; refunding");
        return transition(
            state,
            row,
            SagaState::Cancelling,
            SagaState::Refunding,
            None,
            Some(PaymentStatus::Succeeded),
        )
        .await;
    }
    give_up(state, row, SagaState::Cancelling).await
}

/// After payment: stock leaves for good, the cart loses what was bought, the e-mail is queued.
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn complete(state: &AppState, row: &OrderRow) -> Result<Next, Stop> {
    state
        .clients
        .reservation_step(row.id, "commit")
        .await
        .map_err(interrupted)?;
    crash_at(state, FaultPoint::AfterReservationCommit, row.id)?;
    state
        .clients
        .remove_ordered_from_cart(row.user_id, row.id, &row.requested_items)
        .await
        .map_err(interrupted)?;
    let items = model::items(&state.db, &[row.id])
        .await
        .map_err(Stop::Interrupted)?;
    let order = model::view(row.clone(), items.into_iter().map(|(_, i)| i).collect());
    let email = OrderConfirmation {
        order_id: order.id,
        to: row.email.clone(),
        name: row.customer_name.clone(),
        items: order
            .items
            .into_iter()
            .map(|line| ConfirmationLine {
                name: line.name,
                sku: line.sku,
                option_values: line.option_values.0,
                quantity: i64::from(line.quantity),
                unit_price_cents: line.unit_price_cents,
                line_total_cents: line.line_total_cents,
            })
            .collect(),
        subtotal_cents: order.subtotal_cents,
        discount_cents: order.discount_cents,
        promotion_code: order.promotion_code,
        total_cents: order.total_cents,
        currency: order.currency,
        shipping_address: Some(order.shipping_address),
    };
    match state.clients.queue_confirmation(&email).await {
        Ok(_) => {}
        // The charge has gone through: an e-mail the payment service will never accept (a bad
        // address) must not hold the paid order back. Retrying cannot help; leave a trace.
        Err(CallError::Api(e)) if is_permanent_refusal(e.status) => {
            tracing::error!(
                order_id = %row.id,
                status = e.status.as_u16(),
                detail = %e.detail,
                "the order confirmation e-mail was refused and will not be sent; the order completes without it"
            );
        }
        Err(e) => return Err(interrupted(e)),
    }
    transition(
        state,
        row,
        SagaState::Completing,
        SagaState::Done,
        None,
        None,
    )
    .await
}

#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn release(state: &AppState, row: &OrderRow) -> Result<Next, Stop> {
    checked(row, SagaState::Releasing, SagaState::Done, None)?;
    checked(row, SagaState::Releasing, SagaState::Refunding, None)?;
    match state.clients.reservation_step(row.id, "release").await {
        Ok(_) => {}
        // Never reserved (or already gone): nothing to give back.
        Err(CallError::Api(e)) if e.status == 404 => {}
        Err(e) => return Err(interrupted(e)),
    }
    // Not paid: the cart is the shopper's again, to retry with another card.
    state
        .clients
        .release_cart(row.user_id, row.id)
        .await
        .map_err(interrupted)?;
    // A success that arrived while this ran (`late_success`) is refunded, never kept.
    sqlx::query(
        "UPDATE orders SET saga_state = CASE WHEN late_success THEN $3 ELSE $4 END,
           updated_at = now()
         WHERE id = $1 AND saga_state = $2",
    )
    .bind(row.id)
    .bind(SagaState::Releasing)
    .bind(SagaState::Refunding)
    .bind(SagaState::Done)
    .execute(&state.db)
    .await
    .map_err(db_failed)?;
    Ok(None)
}

/// Cancelling a paid order, or a payment that succeeded after its order stopped waiting:
/// refund first, then put the stock back (and the cart, if it was never bought).
#[tracing::instrument(skip_all, fields(order_id = %row.id))]
async fn refund(state: &AppState, row: &OrderRow) -> Result<Next, Stop> {
    checked(
        row,
        SagaState::Refunding,
        SagaState::Done,
        Some(OrderStatus::Cancelled),
    )?;
    // A free order was never charged: nothing to refund.
    let refunded = if row.payment_status == PaymentStatus::NotRequired {
        0
    } else {
        let payment = state.clients.refund(row.id).await.map_err(interrupted)?;
        payment.amount_refunded_cents
    };
    state
        .clients
        .reservation_step(row.id, "restock")
        .await
        .map_err(interrupted)?;
    state
        .clients
        .release_cart(row.user_id, row.id)
        .await
        .map_err(interrupted)?;
    sqlx::query(
        "UPDATE orders SET saga_state = $4, status = $5,
           payment_status = CASE WHEN payment_status = $6 THEN payment_status ELSE $7 END,
           amount_refunded_cents = greatest(amount_refunded_cents, $2), updated_at = now()
         WHERE id = $1 AND saga_state = $3",
    )
    .bind(row.id)
    .bind(refunded)
    .bind(SagaState::Refunding)
    .bind(SagaState::Done)
    .bind(OrderStatus::Cancelled)
    .bind(PaymentStatus::NotRequired)
    .bind(PaymentStatus::Refunded)
    .execute(&state.db)
    .await
    .map_err(db_failed)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_final_client_error_is_a_permanent_refusal() {
        assert!(is_permanent_refusal(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(is_permanent_refusal(StatusCode::BAD_REQUEST));
        assert!(!is_permanent_refusal(StatusCode::REQUEST_TIMEOUT));
        assert!(!is_permanent_refusal(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_permanent_refusal(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_permanent_refusal(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
