//! Stock reservations for the order service (internal; never routed by the gateway).
//!
//! Stock is per variant (a product without options is its own one variant, same id). It is only
//! ever changed in the database, inside one transaction per operation, locking the affected
//! product rows and then their variant rows, each in id order, so concurrent reservations
//! serialise per product and never deadlock (a trigger updates the product's stock after each
//! variant change; see `variants`). The `stock >= 0` CHECK constraint is the last line of defence.
//!
//! Lifecycle: `reserved` -> `committed` (stock leaves for good) or `released` (stock returns,
//! once). A `reserved` reservation past `expires_at` is released by the sweeper; until the
//! sweeper has released it, commit still succeeds (its stock was never given back).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use souk_common::error::parse_id;
use souk_common::{ApiError, ApiResult, FieldError, Json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use souk_contract::ErrorCode;
use souk_contract::reservations::{
    self as contract, ExtendRequest, Reservation, ReservationLine, ReserveItem, ReserveRequest,
};

use crate::AppState;
use crate::variants::OptionValues;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(contract::RESERVE, post(reserve))
        .route("/internal/reservations/{order_id}", get(show))
        .route(
            "/internal/reservations/{order_id}/commit",
            step(Step::Commit),
        )
        .route(
            "/internal/reservations/{order_id}/release",
            step(Step::Release),
        )
        .route(
            "/internal/reservations/{order_id}/restock",
            step(Step::Restock),
        )
        .route("/internal/reservations/{order_id}/extend", post(extend))
}

/// Keeps a reservation's stock held longer: an order waiting for the shopper to finish a
/// payment (3-D Secure) must not have its stock swept and sold meanwhile. Never shortens it.
#[tracing::instrument(skip_all)]
async fn extend(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Json(body): Json<ExtendRequest>,
) -> ApiResult<Json<Reservation>> {
    let order_id = parse_id(&order_id, "reservation")?;
    if !(1..=7 * 24 * 3600).contains(&body.seconds) {
        return Err(ApiError::invalid_field(
            "seconds",
            "must be between 1 and 604800",
        ));
    }
    let mut tx = state.db.begin().await?;
    match lock_status(&mut tx, order_id).await?.as_str() {
        "released" => return Err(released()),
        "reserved" => {
            sqlx::query(
                "UPDATE reservations SET updated_at = now(),
                   expires_at = greatest(expires_at, now() + make_interval(secs => $2))
                 WHERE order_id = $1",
            )
            .bind(order_id)
            .bind(body.seconds as f64)
            .execute(&mut *tx)
            .await?;
        }
        _ => {}
    }
    let reservation = load(&mut tx, order_id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(Json(reservation))
}

pub const MAX_LINE_QUANTITY: i64 = 100;
pub const MAX_LINES: usize = 100;

/// Validates the lines and sums those of the same variant, ordered by variant id.
fn summed(items: &[ReserveItem]) -> Result<BTreeMap<Uuid, i64>, ApiError> {
    let mut errors = Vec::new();
    if items.is_empty() {
        errors.push(FieldError::new("items", "must not be empty"));
    }
    if items.len() > MAX_LINES {
        errors.push(FieldError::new(
            "items",
            format!("at most {MAX_LINES} lines"),
        ));
    }
    let mut lines = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if !(1..=MAX_LINE_QUANTITY).contains(&item.quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                format!("must be from 1 to {MAX_LINE_QUANTITY}"),
            ));
        }
        match item.variant() {
            Some(id) => *lines.entry(id).or_insert(0) += item.quantity,
            None => errors.push(FieldError::new(
                format!("items[{i}].variant_id"),
                "is required",
            )),
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(ApiError::validation(errors))
    }
}

async fn load(conn: &mut PgConnection, order_id: Uuid) -> ApiResult<Option<Reservation>> {
    let head: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT status, expires_at FROM reservations WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((status, expires_at)) = head else {
        return Ok(None);
    };
    Ok(Some(Reservation {
        order_id,
        status,
        expires_at,
        lines: lines(conn, order_id).await?,
    }))
}

async fn lines(conn: &mut PgConnection, order_id: Uuid) -> ApiResult<Vec<ReservationLine>> {
    Ok(sqlx::query_as(
        "SELECT product_id, variant_id, option_values, sku, name, quantity, unit_price_cents,
                currency
         FROM reservation_lines WHERE order_id = $1 ORDER BY variant_id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?)
}

/// 409: the stock of a released (or expired) reservation can no longer be committed or held.
fn released() -> ApiError {
    ApiError::conflict(
        ErrorCode::ReservationReleased,
        "the reservation was released or expired; its stock is no longer held",
    )
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ReservationNotFound,
        "no reservation for this order",
    )
}

#[derive(sqlx::FromRow)]
struct Locked {
    id: Uuid,
    product_id: Uuid,
    option_values: sqlx::types::Json<OptionValues>,
    sku: String,
    name: String,
    price_cents: i64,
    currency: String,
    stock: i64,
    active: bool,
}

/// All-or-nothing; idempotent per order id (a replay answers 200 with the stored reservation).
#[tracing::instrument(skip_all)]
async fn reserve(
    State(state): State<AppState>,
    Json(body): Json<ReserveRequest>,
) -> ApiResult<(StatusCode, Json<Reservation>)> {
    let wanted = summed(&body.items)?;
    let order_id = body.order_id;
    let mut tx = state.db.begin().await?;
    // A concurrent first attempt with the same order id makes this wait for its outcome.
    let created: Option<DateTime<Utc>> = sqlx::query_scalar(
        "INSERT INTO reservations (order_id, status, expires_at)
         VALUES ($1, 'reserved', now() + make_interval(secs => $2))
         ON CONFLICT (order_id) DO NOTHING RETURNING expires_at",
    )
    .bind(order_id)
    .bind(state.config.reservation_ttl.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(expires_at) = created else {
        let existing = load(&mut tx, order_id).await?.ok_or_else(not_found)?;
        tx.rollback().await?;
        let same = existing.lines.len() == wanted.len()
            && existing
                .lines
                .iter()
                .all(|l| wanted.get(&l.variant()) == Some(&l.quantity));
        if !same {
            return Err(ApiError::conflict(
                ErrorCode::IdempotencyKeyReused,
                "this order id already holds a reservation for different items",
            ));
        }
        return Ok((StatusCode::OK, Json(existing)));
    };

    let ids: Vec<Uuid> = wanted.keys().copied().collect();
    lock_products_of(&mut tx, &ids).await?;
    let rows: Vec<Locked> = sqlx::query_as(
        "SELECT v.id, v.product_id, v.option_values, v.sku, p.name, v.price_cents, p.currency,
                v.stock, p.active AND v.active AS active
         FROM variants v JOIN products p ON p.id = v.product_id
         WHERE v.id = ANY($1) ORDER BY v.id FOR UPDATE OF v",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut unavailable = Vec::new();
    let mut short = Vec::new();
    let mut lines = Vec::with_capacity(wanted.len());
    for (&variant_id, &quantity) in &wanted {
        match rows.iter().find(|r| r.id == variant_id) {
            Some(p) if p.active => {
                if p.stock < quantity {
                    short.push(format!("{} ({}: {} left)", p.id, p.sku, p.stock));
                }
                lines.push(ReservationLine {
                    product_id: p.product_id,
                    variant_id: Some(variant_id),
                    option_values: p.option_values.0.clone(),
                    sku: p.sku.clone(),
                    name: p.name.clone(),
                    quantity,
                    unit_price_cents: p.price_cents,
                    currency: p.currency.clone(),
                });
            }
            _ => unavailable.push(variant_id),
        }
    }
    if !unavailable.is_empty() {
        let list: Vec<String> = unavailable.iter().map(Uuid::to_string).collect();
        return Err(ApiError::conflict(
            ErrorCode::ProductUnavailable,
            format!("not for sale: {}", list.join(", ")),
        )
        .with_extra("variant_ids", serde_json::json!(unavailable)));
    }
    if !short.is_empty() {
        return Err(ApiError::conflict(
            ErrorCode::InsufficientStock,
            format!("not enough stock for {}", short.join(", ")),
        )
        .with_extra(
            "variant_ids",
            serde_json::json!(
                lines
                    .iter()
                    .filter(|l| rows
                        .iter()
                        .any(|r| r.id == l.variant() && r.stock < l.quantity))
                    .map(ReservationLine::variant)
                    .collect::<Vec<_>>()
            ),
        ));
    }
    let quantities: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
    sqlx::query(
        "UPDATE variants v SET stock = v.stock - x.q
         FROM unnest($1::uuid[], $2::bigint[]) AS x(id, q) WHERE v.id = x.id",
    )
    .bind(&ids)
    .bind(&quantities)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO reservation_lines
            (order_id, variant_id, product_id, option_values, sku, name, quantity,
             unit_price_cents, currency)
         SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::jsonb[], $5::text[], $6::text[],
                                  $7::bigint[], $8::bigint[], $9::text[])",
    )
    .bind(order_id)
    .bind(&ids)
    .bind(lines.iter().map(|l| l.product_id).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|l| sqlx::types::Json(l.option_values.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(lines.iter().map(|l| l.sku.clone()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
    .bind(&quantities)
    .bind(lines.iter().map(|l| l.unit_price_cents).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.currency.clone()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // This replica's next catalog read shows the new stock at once (the others hear of it
    // through the notification).
    state
        .cache
        .forget_products(lines.iter().map(|l| l.product_id));
    tracing::info!(%order_id, lines = lines.len(), "stock reserved");
    Ok((
        StatusCode::CREATED,
        Json(Reservation {
            order_id,
            status: "reserved".into(),
            expires_at,
            lines,
        }),
    ))
}

#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Reservation>> {
    let order_id = parse_id(&order_id, "reservation")?;
    let mut conn = state.db.acquire().await?;
    load(&mut conn, order_id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

/// Locks the reservation row and answers its status.
async fn lock_status(conn: &mut PgConnection, order_id: Uuid) -> ApiResult<String> {
    sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1 FOR UPDATE")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(not_found)
}

/// What the order service asks of a reservation once its checkout is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The order is paid: the stock leaves for good.
    Commit,
    /// The checkout failed or was abandoned: the held stock comes back.
    Release,
    /// A cancelled, refunded order: its committed stock comes back, once (a reservation that
    /// was never committed is simply released).
    Restock,
}

/// `POST /internal/reservations/{order_id}/<step>`. Every step is idempotent: a reservation
/// already where the step leads it is answered as it is.
fn step(step: Step) -> axum::routing::MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>, Path(order_id): Path<String>| async move {
            settle(&state, &order_id, step).await.map(Json)
        },
    )
}

#[tracing::instrument(skip(state))]
async fn settle(state: &AppState, order_id: &str, step: Step) -> ApiResult<Reservation> {
    let order_id = parse_id(order_id, "reservation")?;
    if step == Step::Commit
        && let Some(committed) = commit_reserved(state, order_id).await?
    {
        return Ok(committed);
    }
    let mut tx = state.db.begin().await?;
    match (step, lock_status(&mut tx, order_id).await?.as_str()) {
        (Step::Commit, "released") => return Err(released()),
        (Step::Commit, "reserved") => {
            sqlx::query(
                "UPDATE reservations SET status = 'committed', updated_at = now()
                 WHERE order_id = $1",
            )
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
            tracing::info!(%order_id, "reservation committed");
        }
        (Step::Release, "committed") => {
            return Err(ApiError::conflict(
                ErrorCode::ReservationCommitted,
                "the reservation was committed; its stock has left",
            ));
        }
        (Step::Release | Step::Restock, "reserved") => {
            return_stock(&mut tx, &[order_id]).await?;
            tracing::info!(%order_id, "reservation released");
        }
        (Step::Restock, "committed") => {
            return_stock_as(&mut tx, &[order_id], "restocked").await?;
            tracing::info!(%order_id, "committed stock returned");
        }
        _ => {}
    }
    let reservation = load(&mut tx, order_id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    if step != Step::Commit {
        forget_stock(state, &reservation);
    }
    Ok(reservation)
}

/// A paid order's usual case, in one statement and no transaction: a `reserved` reservation
/// becomes `committed` (no stock moves). None: it was in another state, for the locked path.
async fn commit_reserved(state: &AppState, order_id: Uuid) -> ApiResult<Option<Reservation>> {
    let committed: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE reservations SET status = 'committed', updated_at = now()
         WHERE order_id = $1 AND status = 'reserved' RETURNING expires_at",
    )
    .bind(order_id)
    .fetch_optional(&state.db)
    .await?;
    let Some(expires_at) = committed else {
        return Ok(None);
    };
    tracing::info!(%order_id, "reservation committed");
    let mut conn = state.db.acquire().await?;
    Ok(Some(Reservation {
        order_id,
        status: "committed".into(),
        expires_at,
        lines: lines(&mut conn, order_id).await?,
    }))
}

/// Stock may have come back to these lines' products: this replica's next catalog read shows it
/// at once (the others hear of it through the notification).
fn forget_stock(state: &AppState, reservation: &Reservation) {
    state
        .cache
        .forget_products(reservation.lines.iter().map(|l| l.product_id));
}

/// Marks reservations (already locked by the caller, all `reserved`) released and gives their
/// stock back, locking the product rows in id order first.
async fn return_stock(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    return_stock_as(conn, order_ids, "released").await
}

async fn return_stock_as(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reservations SET status = $2, updated_at = now()
         WHERE order_id = ANY($1)",
    )
    .bind(order_ids)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    let variants: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT variant_id FROM reservation_lines WHERE order_id = ANY($1)",
    )
    .bind(order_ids)
    .fetch_all(&mut *conn)
    .await?;
    lock_products_of(conn, &variants).await?;
    sqlx::query("SELECT id FROM variants WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&variants)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE variants v SET stock = v.stock + s.q
         FROM (SELECT variant_id, sum(quantity)::bigint AS q FROM reservation_lines
               WHERE order_id = ANY($1) GROUP BY variant_id) s
         WHERE v.id = s.variant_id",
    )
    .bind(order_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the products of these variants in id order: every stock writer takes the product
/// rows before the variant rows (the variant trigger updates the product).
async fn lock_products_of(
    conn: &mut PgConnection,
    variant_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT id FROM products WHERE id IN (SELECT product_id FROM variants WHERE id = ANY($1))
         ORDER BY id FOR UPDATE",
    )
    .bind(variant_ids)
    .execute(conn)
    .await?;
    Ok(())
}

const SWEEP_BATCH: i64 = 200;

/// Releases one batch of expired reservations; answers how many. Replicas sweeping at the
/// same time skip each other's rows (`SKIP LOCKED`), so each reservation is released once.
pub async fn sweep_once(db: &PgPool) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let expired: Vec<Uuid> = sqlx::query_scalar(
        "SELECT order_id FROM reservations
         WHERE status = 'reserved' AND expires_at <= now()
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(SWEEP_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if !expired.is_empty() {
        return_stock(&mut tx, &expired).await?;
    }
    tx.commit().await?;
    if !expired.is_empty() {
        tracing::info!(count = expired.len(), "expired reservations released");
    }
    Ok(expired.len())
}

/// Runs `sweep_once` every `interval` until `stop`'s sender is dropped.
pub async fn sweeper(db: PgPool, interval: Duration, mut stop: tokio::sync::watch::Receiver<()>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        loop {
            match sweep_once(&db).await {
                Ok(n) if n as i64 == SWEEP_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reservation sweep failed; will retry");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_validated_and_summed() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let items = vec![
            ReserveItem {
                product_id: Some(b),
                variant_id: None,
                quantity: 2,
            },
            ReserveItem {
                product_id: Some(Uuid::now_v7()),
                variant_id: Some(a),
                quantity: 1,
            },
            ReserveItem {
                product_id: None,
                variant_id: Some(b),
                quantity: 3,
            },
        ];
        let lines = summed(&items).unwrap();
        assert_eq!(lines.into_iter().collect::<Vec<_>>(), vec![(a, 1), (b, 5)]);
        assert_eq!(summed(&[]).unwrap_err().status, 422);
        let e = summed(&[ReserveItem {
            product_id: Some(a),
            variant_id: None,
            quantity: 0,
        }])
        .unwrap_err();
        assert_eq!(e.errors[0].field, "items[0].quantity");
        let e = summed(&[ReserveItem {
            product_id: None,
            variant_id: None,
            quantity: 1,
        }])
        .unwrap_err();
        assert_eq!(e.errors[0].field, "items[0].variant_id");
        assert!(
            summed(&[ReserveItem {
                product_id: Some(a),
                variant_id: None,
                quantity: 101
            }])
            .is_err()
        );
    }
}
