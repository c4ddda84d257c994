//! `/api/v1/cart` for the signed-in user, and the order service's internal view of a cart.
//!
//! Prices are never frozen: every read asks the product service for current prices (one call
//! per read). When the product service cannot answer, reads still answer 200 with each line's
//! last known name and price, flagged `price_stale: true` (and `prices_stale: true` on the
//! cart); writes that need the catalog (adding, raising or setting a quantity) answer 503.
//! Removing lines and clearing the cart need no catalog and keep working.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use souk_common::error::parse_id;
use souk_common::{ApiError, ApiResult, AuthUser, FieldError, Json, ServiceCaller};
use souk_contract::ErrorCode;
use souk_contract::promotions::QuoteLine;
use uuid::Uuid;

use crate::AppState;
use crate::catalog::{self, CatalogEntry, OptionValues};
use crate::edit;
use crate::promotion::{self, CartPromotion};

pub const MAX_QUANTITY: i64 = 100;
/// Distinct variants per cart (one catalog call prices them all).
pub const MAX_LINES: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cart", get(show).delete(clear))
        .route("/api/v1/cart/items", post(add))
        .route(
            "/api/v1/cart/items/{variant_id}",
            patch(set_quantity).delete(remove),
        )
        .route("/internal/carts/{user_id}", get(internal_show))
        .route("/internal/carts/{user_id}/ordered", post(ordered))
}

#[derive(Debug, Serialize)]
pub struct CartView {
    pub items: Vec<CartLine>,
    pub subtotal_cents: i64,
    pub currency: String,
    /// True when the catalog could not be asked and some prices are the last ones seen.
    pub prices_stale: bool,
    /// The applied promotion code (`PUT /cart/promotion`), null when there is none.
    pub promotion: Option<CartPromotion>,
    /// What the promotion takes off now (0 unless `promotion.applicable`).
    pub discount_cents: i64,
    /// `subtotal_cents - discount_cents`.
    pub total_cents: i64,
}

#[derive(Debug, Serialize)]
pub struct CartLine {
    pub product_id: Uuid,
    /// What the line is keyed by: the product's id for a product without options.
    pub variant_id: Uuid,
    /// `{}` for a product without options.
    pub option_values: OptionValues,
    pub name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
    /// True when `unit_price_cents` is the last known price, not a current one.
    pub price_stale: bool,
    /// Whether the line can be bought as it is (product active, enough stock); `null` when
    /// the catalog could not be asked.
    pub available: Option<bool>,
}

#[derive(sqlx::FromRow)]
struct Row {
    variant_id: Uuid,
    product_id: Uuid,
    quantity: i32,
    last_name: String,
    last_unit_price_cents: i64,
    last_currency: String,
    last_option_values: sqlx::types::Json<OptionValues>,
}

pub async fn render(state: &AppState, user: Uuid) -> ApiResult<CartView> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT variant_id, product_id, quantity, last_name, last_unit_price_cents, last_currency,
                last_option_values
         FROM cart_items WHERE user_id = $1 ORDER BY created_at, variant_id",
    )
    .bind(user)
    .fetch_all(&state.db)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.variant_id).collect();
    let fresh: Option<HashMap<Uuid, CatalogEntry>> =
        match catalog::lookup(&state.products, &ids).await {
            Ok(map) => Some(map),
            Err(e) => {
                tracing::warn!(error = %e, "catalog unavailable; showing last known prices");
                None
            }
        };
    let mut items = Vec::with_capacity(rows.len());
    let mut changed = Vec::new();
    let mut currency = None;
    // Priced for the promotion only with current prices (none while the catalog is down).
    let mut quote_lines = fresh.as_ref().map(|_| Vec::new());
    for row in rows {
        let quantity = i64::from(row.quantity);
        let line = match fresh.as_ref().and_then(|m| m.get(&row.variant_id)) {
            Some(p) => {
                if let Some(lines) = quote_lines.as_mut() {
                    lines.push(promotion::quote_line(quantity, p));
                }
                if p.price_cents != row.last_unit_price_cents
                    || p.name != row.last_name
                    || p.option_values != row.last_option_values.0
                {
                    changed.push(p.clone());
                }
                currency.get_or_insert_with(|| p.currency.clone());
                CartLine {
                    product_id: p.product_id,
                    variant_id: row.variant_id,
                    option_values: p.option_values.clone(),
                    name: p.name.clone(),
                    quantity,
                    unit_price_cents: p.price_cents,
                    line_total_cents: p.price_cents.saturating_mul(quantity),
                    price_stale: false,
                    available: Some(p.active && p.stock >= quantity),
                }
            }
            // Unknown to the catalog (or the catalog is down): the last price seen.
            None => {
                currency.get_or_insert_with(|| row.last_currency.clone());
                CartLine {
                    product_id: row.product_id,
                    variant_id: row.variant_id,
                    option_values: row.last_option_values.0,
                    name: row.last_name,
                    quantity,
                    unit_price_cents: row.last_unit_price_cents,
                    line_total_cents: row.last_unit_price_cents.saturating_mul(quantity),
                    price_stale: fresh.is_none(),
                    available: fresh.as_ref().map(|_| false),
                }
            }
        };
        items.push(line);
    }
    if !changed.is_empty() {
        remember(state, user, &changed).await;
    }
    let subtotal_cents = items
        .iter()
        .fold(0i64, |sum, l| sum.saturating_add(l.line_total_cents));
    let (promotion, discount_cents) = match promotion::stored_code(state, user).await? {
        Some(code) => {
            let (view, discount) = promotion::show(state, user, code, quote_lines).await;
            (Some(view), discount)
        }
        None => (None, 0),
    };
    Ok(CartView {
        subtotal_cents,
        currency: currency.unwrap_or_else(|| state.config.currency.clone()),
        prices_stale: fresh.is_none() && !items.is_empty(),
        items,
        promotion,
        discount_cents,
        total_cents: subtotal_cents - discount_cents,
    })
}

/// The cart's lines at current catalog prices (503 while the catalog is down), for a quote.
pub async fn priced_lines(state: &AppState, user: Uuid) -> ApiResult<Vec<QuoteLine>> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT variant_id, quantity FROM cart_items WHERE user_id = $1
         ORDER BY created_at, variant_id",
    )
    .bind(user)
    .fetch_all(&state.db)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let catalog = catalog::lookup(&state.products, &ids).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, quantity)| {
            let p = catalog.get(&id)?;
            Some(promotion::quote_line(i64::from(quantity), p))
        })
        .collect())
}

/// Keeps the last known name, options and price, for reads while the catalog is down. Best
/// effort.
async fn remember(state: &AppState, user: Uuid, products: &[CatalogEntry]) {
    let result = sqlx::query(
        "UPDATE cart_items c SET last_name = x.name, last_unit_price_cents = x.price,
            last_currency = x.currency, last_option_values = x.options
         FROM unnest($2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::jsonb[])
              AS x(id, name, price, currency, options)
         WHERE c.user_id = $1 AND c.variant_id = x.id",
    )
    .bind(user)
    .bind(products.iter().map(|p| p.id).collect::<Vec<_>>())
    .bind(products.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
    .bind(products.iter().map(|p| p.price_cents).collect::<Vec<_>>())
    .bind(
        products
            .iter()
            .map(|p| p.currency.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        products
            .iter()
            .map(|p| sqlx::types::Json(p.option_values.clone()))
            .collect::<Vec<_>>(),
    )
    .execute(&state.db)
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record last known prices");
    }
}

#[tracing::instrument(skip_all)]
async fn show(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<CartView>> {
    render(&state, user.id).await.map(Json)
}

/// The variant as it is now, if it can be sold; 503 if the catalog is down. Without a
/// `variant_id` the product must be one without options (its one variant has its id): a
/// product with options is 422 `variant_required`. A variant of another product is 422; an
/// unknown or inactive product or variant is 404.
async fn sellable(
    state: &AppState,
    product_id: Uuid,
    variant_id: Option<Uuid>,
) -> ApiResult<CatalogEntry> {
    let id = variant_id.unwrap_or(product_id);
    let mut found = catalog::lookup(&state.products, &[id]).await?;
    let not_sold = || ApiError::not_found("no such product or variant, or it is no longer sold");
    match found.remove(&id) {
        Some(v) if v.product_id != product_id => Err(ApiError::invalid_field(
            "variant_id",
            "is a variant of another product",
        )),
        Some(v) if v.active => Ok(v),
        Some(_) => Err(not_sold()),
        None if variant_id.is_none() => {
            match catalog::product(&state.products, product_id).await? {
                Some(p) if p.has_options => {
                    let mut e = ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ErrorCode::VariantRequired,
                        "this product comes in variants: choose one with variant_id",
                    );
                    e.errors = vec![FieldError::new(
                        "variant_id",
                        "is required for this product",
                    )];
                    Err(e)
                }
                _ => Err(not_sold()),
            }
        }
        None => Err(not_sold()),
    }
}

fn quantity_error(min: i64) -> ApiError {
    ApiError::validation(vec![FieldError::new(
        "quantity",
        format!("must be an integer from {min} to {MAX_QUANTITY}"),
    )])
}

fn insufficient(p: &CatalogEntry) -> ApiError {
    ApiError::conflict(
        ErrorCode::InsufficientStock,
        format!("only {} of this item are in stock", p.stock),
    )
}

#[derive(Deserialize)]
struct AddItem {
    product_id: Uuid,
    /// Required when the product has options.
    #[serde(default)]
    variant_id: Option<Uuid>,
    quantity: i64,
}

/// Adds to the line of the same variant if there is one.
#[tracing::instrument(skip_all)]
async fn add(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<AddItem>,
) -> ApiResult<Json<CartView>> {
    if !(1..=MAX_QUANTITY).contains(&body.quantity) {
        return Err(quantity_error(1));
    }
    let product = sellable(&state, body.product_id, body.variant_id).await?;
    if body.quantity > product.stock {
        return Err(insufficient(&product));
    }
    let mut tx = edit::begin(&state, user.id).await?;
    let lines: i64 = sqlx::query_scalar("SELECT count(*) FROM cart_items WHERE user_id = $1")
        .bind(user.id)
        .fetch_one(&mut *tx)
        .await?;
    if lines >= MAX_LINES {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM cart_items WHERE user_id = $1 AND variant_id = $2)",
        )
        .bind(user.id)
        .bind(product.id)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            return Err(ApiError::conflict(
                ErrorCode::CartFull,
                format!("a cart holds at most {MAX_LINES} different items"),
            ));
        }
    }
    // One statement, so concurrent adds of the same product cannot overshoot the limits.
    let cap = product.stock.min(MAX_QUANTITY);
    let applied: Option<i32> = sqlx::query_scalar(
        "INSERT INTO cart_items
            (user_id, variant_id, product_id, quantity, last_name, last_unit_price_cents,
             last_currency, last_option_values)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (user_id, variant_id) DO UPDATE SET
            quantity = cart_items.quantity + EXCLUDED.quantity,
            last_name = EXCLUDED.last_name,
            last_unit_price_cents = EXCLUDED.last_unit_price_cents,
            last_currency = EXCLUDED.last_currency,
            last_option_values = EXCLUDED.last_option_values,
            updated_at = now()
         WHERE cart_items.quantity + EXCLUDED.quantity <= $9
         RETURNING quantity",
    )
    .bind(user.id)
    .bind(product.id)
    .bind(product.product_id)
    .bind(body.quantity as i32)
    .bind(&product.name)
    .bind(product.price_cents)
    .bind(&product.currency)
    .bind(sqlx::types::Json(&product.option_values))
    .bind(cap)
    .fetch_optional(&mut *tx)
    .await?;
    if applied.is_none() {
        let current: i64 = sqlx::query_scalar(
            "SELECT quantity::bigint FROM cart_items WHERE user_id = $1 AND variant_id = $2",
        )
        .bind(user.id)
        .bind(product.id)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        if current + body.quantity > MAX_QUANTITY {
            return Err(ApiError::invalid_field(
                "quantity",
                format!(
                    "the line would hold {}; at most {MAX_QUANTITY} per item",
                    current + body.quantity
                ),
            ));
        }
        return Err(insufficient(&product));
    }
    tx.commit().await?;
    render(&state, user.id).await.map(Json)
}

#[derive(Deserialize)]
struct QuantityBody {
    quantity: i64,
}

/// Sets a line's quantity; 0 removes the line (and, like DELETE, is fine if there is none).
#[tracing::instrument(skip_all)]
async fn set_quantity(
    State(state): State<AppState>,
    user: AuthUser,
    Path(variant_id): Path<String>,
    Json(body): Json<QuantityBody>,
) -> ApiResult<Json<CartView>> {
    let variant_id = parse_id(&variant_id, "cart line")?;
    if !(0..=MAX_QUANTITY).contains(&body.quantity) {
        return Err(quantity_error(0));
    }
    if body.quantity == 0 {
        return remove_line(&state, user.id, variant_id).await;
    }
    let product_id: Option<Uuid> = sqlx::query_scalar(
        "SELECT product_id FROM cart_items WHERE user_id = $1 AND variant_id = $2",
    )
    .bind(user.id)
    .bind(variant_id)
    .fetch_optional(&state.db)
    .await?;
    let Some(product_id) = product_id else {
        return Err(ApiError::not_found("this item is not in your cart"));
    };
    let product = sellable(&state, product_id, Some(variant_id)).await?;
    if body.quantity > product.stock {
        return Err(insufficient(&product));
    }
    let mut tx = edit::begin(&state, user.id).await?;
    let updated = sqlx::query(
        "UPDATE cart_items SET quantity = $3, last_name = $4, last_unit_price_cents = $5,
            last_currency = $6, updated_at = now()
         WHERE user_id = $1 AND variant_id = $2",
    )
    .bind(user.id)
    .bind(variant_id)
    .bind(body.quantity as i32)
    .bind(&product.name)
    .bind(product.price_cents)
    .bind(&product.currency)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found("this item is not in your cart"));
    }
    tx.commit().await?;
    render(&state, user.id).await.map(Json)
}

async fn remove_line(state: &AppState, user: Uuid, variant_id: Uuid) -> ApiResult<Json<CartView>> {
    let mut tx = edit::begin(state, user).await?;
    sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND variant_id = $2")
        .bind(user)
        .bind(variant_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    render(state, user).await.map(Json)
}

/// Removes a line; idempotent (a line that is not there is already removed).
#[tracing::instrument(skip_all)]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(variant_id): Path<String>,
) -> ApiResult<Json<CartView>> {
    let variant_id = parse_id(&variant_id, "cart line")?;
    remove_line(&state, user.id, variant_id).await
}

/// Empties the cart, its promotion code included.
#[tracing::instrument(skip_all)]
async fn clear(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    let mut tx = edit::begin(&state, user.id).await?;
    sqlx::query("DELETE FROM cart_items WHERE user_id = $1")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM cart_promotions WHERE user_id = $1")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all)]
async fn internal_show(
    State(state): State<AppState>,
    _service: ServiceCaller,
    Path(user_id): Path<String>,
) -> ApiResult<Json<CartView>> {
    let user_id = parse_id(&user_id, "cart")?;
    render(&state, user_id).await.map(Json)
}

/// The order service bought these lines: subtract them from the cart, once per order id.
#[tracing::instrument(skip_all)]
async fn ordered(
    State(state): State<AppState>,
    _service: ServiceCaller,
    Path(user_id): Path<String>,
    Json(body): Json<souk_contract::carts::Ordered>,
) -> ApiResult<StatusCode> {
    let user_id = parse_id(&user_id, "cart")?;
    let mut sums: HashMap<Uuid, i64> = HashMap::new();
    for (i, item) in body.items.iter().enumerate() {
        if item.quantity < 1 {
            return Err(ApiError::invalid_field(
                &format!("items[{i}].quantity"),
                "must be at least 1",
            ));
        }
        *sums.entry(item.variant()).or_insert(0) += i64::from(item.quantity);
    }
    let (ids, quantities): (Vec<Uuid>, Vec<i64>) = sums.into_iter().unzip();
    let mut tx = state.db.begin().await?;
    let first: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO cart_orders (order_id, user_id) VALUES ($1, $2)
         ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
    )
    .bind(body.order_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    if first.is_some() {
        sqlx::query(
            "DELETE FROM cart_items c USING unnest($2::uuid[], $3::bigint[]) AS x(id, q)
             WHERE c.user_id = $1 AND c.variant_id = x.id AND c.quantity <= x.q",
        )
        .bind(user_id)
        .bind(&ids)
        .bind(&quantities)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE cart_items c SET quantity = c.quantity - x.q, updated_at = now()
             FROM unnest($2::uuid[], $3::bigint[]) AS x(id, q)
             WHERE c.user_id = $1 AND c.variant_id = x.id AND c.quantity > x.q",
        )
        .bind(user_id)
        .bind(&ids)
        .bind(&quantities)
        .execute(&mut *tx)
        .await?;
        // The order redeemed the cart's code: it is spent with the lines it bought.
        sqlx::query("DELETE FROM cart_promotions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    // Paid: the checkout's claim ends with the lines it bought.
    sqlx::query("DELETE FROM cart_claims WHERE user_id = $1 AND order_id = $2")
        .bind(user_id)
        .bind(body.order_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
