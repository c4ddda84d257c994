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
use souk_common::{ApiError, ApiResult, AuthUser, FieldError, Json};
use souk_contract::ErrorCode;
use souk_contract::promotions::QuoteLine;
use uuid::Uuid;

use crate::AppState;
use crate::catalog::{self, CatalogEntry, OptionValues};
use crate::edit;
use crate::openapi::{
    AddConflict, AddInvalid, CatalogUnavailable, CheckoutInProgress, LineIdNotFound, LineNotFound,
    ProductNotSold, QuantityConflict, QuantityInvalid,
};
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Cart)]
pub struct CartView {
    /// In the order they were added.
    pub items: Vec<CartLine>,
    /// Sum of `line_total_cents`.
    #[schema(minimum = 0)]
    pub subtotal_cents: i64,
    /// Lowercase ISO 4217 code; the shop sells in one currency (default `usd`).
    #[schema(pattern = "^[a-z]{3}$", examples("usd"))]
    pub currency: String,
    /// True when the product service could not be asked and the lines show last known prices.
    pub prices_stale: bool,
    /// The applied code (`PUT /cart/promotion`); null when none. A code that stopped applying
    /// stays, with `applicable: false` and a `reason`, and no discount.
    #[schema(required = true)]
    pub promotion: Option<CartPromotion>,
    /// What the promotion takes off now (0 unless it applies).
    #[schema(minimum = 0)]
    pub discount_cents: i64,
    /// `subtotal_cents - discount_cents`.
    #[schema(minimum = 0)]
    pub total_cents: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartLine {
    pub product_id: Uuid,
    /// The line's key: the variant bought (a product without options: the product's id).
    pub variant_id: Uuid,
    /// `{}` for a product without options.
    #[schema(schema_with = crate::openapi::option_values)]
    pub option_values: OptionValues,
    pub name: String,
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
    /// Current catalog price, or the last known one when `price_stale`.
    #[schema(minimum = 0)]
    pub unit_price_cents: i64,
    /// `unit_price_cents * quantity`.
    #[schema(minimum = 0)]
    pub line_total_cents: i64,
    /// True when the product service could not be asked and `unit_price_cents` (and `name`)
    /// are the last known ones.
    pub price_stale: bool,
    /// Whether the line can be bought as it is (product active, enough stock); null when the
    /// product service could not be asked.
    #[schema(required = true)]
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
    render_knowing(state, user, None).await
}

/// The cart, with `known` (just read from the catalog by this request) not asked for again.
async fn render_knowing(
    state: &AppState,
    user: Uuid,
    known: Option<CatalogEntry>,
) -> ApiResult<CartView> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT variant_id, product_id, quantity, last_name, last_unit_price_cents, last_currency,
                last_option_values
         FROM cart_items WHERE user_id = $1 ORDER BY created_at, variant_id",
    )
    .bind(user)
    .fetch_all(&state.db)
    .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.variant_id)
        .filter(|id| known.as_ref().is_none_or(|k| k.id != *id))
        .collect();
    let fresh: Option<HashMap<Uuid, CatalogEntry>> =
        match catalog::lookup(&state.products, &ids).await {
            Ok(mut map) => {
                map.extend(known.map(|k| (k.id, k)));
                Some(map)
            }
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

/// The caller's cart
///
/// Prices are never frozen: every read asks the catalog for current names, prices and stock.
/// When the product service cannot answer, reads still answer 200 with each line's last known
/// name and price, flagged `price_stale: true` on the line and `prices_stale: true` on the
/// cart (and `available: null`).
#[utoipa::path(
    get,
    path = "/api/v1/cart",
    operation_id = "getCart",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart (possibly with stale prices).", body = CartView),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn show(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<CartView>> {
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

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CartItemAdd)]
pub(crate) struct AddItem {
    product_id: Uuid,
    /// Required when the product has options (422 `variant_required`); for a product without
    /// options it may be left out or be the product's id.
    #[serde(default)]
    #[schema(value_type = Uuid)]
    variant_id: Option<Uuid>,
    #[schema(minimum = 1, maximum = 100)]
    quantity: i64,
}

/// Add a product (or one of its variants) to the cart
///
/// Adds `quantity` to the variant's line (lines are keyed by `variant_id`; a product with
/// options needs one), creating it if needed. A line holds 1-100 units and never more than the
/// variant's stock; a cart holds at most 100 different variants. Needs the catalog: 503 while
/// the product service is down. Prices are never frozen: every read asks the catalog for
/// current names, prices and stock. When the product service cannot answer, reads still answer
/// 200 with each line's last known name and price, flagged `price_stale: true` on the line and
/// `prices_stale: true` on the cart (and `available: null`).
#[utoipa::path(
    post,
    path = "/api/v1/cart/items",
    operation_id = "addCartItem",
    security(("bearer" = [])),
    request_body(
        content = AddItem,
        description = "The product and how many to add.",
        example = json!({"product_id": "0193a1f2-7c4e-7d3a-9b1e-2f5c8d9e0a1b", "quantity": 2}),
    ),
    responses(
        (status = 200, description = "The whole cart after the change.", body = CartView),
        (status = 404, response = inline(ProductNotSold)),
        (status = 409, response = inline(AddConflict)),
        (status = 422, response = inline(AddInvalid)),
        (status = 503, response = inline(CatalogUnavailable)),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn add(
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
    render_knowing(&state, user.id, Some(product))
        .await
        .map(Json)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CartItemQuantity)]
pub(crate) struct QuantityBody {
    /// 0 removes the line.
    #[schema(minimum = 0, maximum = 100)]
    quantity: i64,
}

/// Set a line's quantity
///
/// Sets the line's quantity (0-100); 0 removes the line (and is 200 even if there was no
/// line). Any other quantity needs the line to exist (else 404) and the catalog (503 while the
/// product service is down).
#[utoipa::path(
    patch,
    path = "/api/v1/cart/items/{variant_id}",
    operation_id = "setCartItemQuantity",
    security(("bearer" = [])),
    params(("variant_id" = Uuid, Path, description = "The cart line's `variant_id` (for a product without options, the product's id).")),
    request_body(
        content = QuantityBody,
        description = "The new quantity.",
        example = json!({"quantity": 3}),
    ),
    responses(
        (status = 200, description = "The whole cart after the change.", body = CartView),
        (status = 404, response = inline(LineNotFound)),
        (status = 409, response = inline(QuantityConflict)),
        (status = 422, response = inline(QuantityInvalid)),
        (status = 503, response = inline(CatalogUnavailable)),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn set_quantity(
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

/// Remove a line
///
/// Idempotent: removing a line that is not there is 200 too. Works while the product service
/// is down.
#[utoipa::path(
    delete,
    path = "/api/v1/cart/items/{variant_id}",
    operation_id = "removeCartItem",
    security(("bearer" = [])),
    params(("variant_id" = Uuid, Path, description = "The cart line's `variant_id` (for a product without options, the product's id).")),
    responses(
        (status = 200, description = "The whole cart after the change.", body = CartView),
        (status = 404, response = inline(LineIdNotFound)),
        (status = 409, response = inline(CheckoutInProgress)),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(variant_id): Path<String>,
) -> ApiResult<Json<CartView>> {
    let variant_id = parse_id(&variant_id, "cart line")?;
    remove_line(&state, user.id, variant_id).await
}

/// Empty the cart
///
/// Removes every line; works while the product service is down.
#[utoipa::path(
    delete,
    path = "/api/v1/cart",
    operation_id = "clearCart",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Emptied."),
        (status = 409, response = inline(CheckoutInProgress)),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn clear(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
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
    Path(user_id): Path<String>,
) -> ApiResult<Json<CartView>> {
    let user_id = parse_id(&user_id, "cart")?;
    render(&state, user_id).await.map(Json)
}

/// The order service bought these lines: subtract them from the cart, once per order id.
#[tracing::instrument(skip_all)]
async fn ordered(
    State(state): State<AppState>,
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
    // One statement, so one round trip and all or nothing. The first time for this order id
    // (`bought`), the lines lose what it bought (a line bought whole goes) and the code it
    // redeemed is spent; every time, the checkout's claim ends with the purchase.
    sqlx::query(
        "WITH bought AS (
           INSERT INTO cart_orders (order_id, user_id) VALUES ($4, $1)
           ON CONFLICT (order_id) DO NOTHING RETURNING order_id),
         gone AS (
           DELETE FROM cart_items c USING unnest($2::uuid[], $3::bigint[]) AS x(id, q)
           WHERE EXISTS (SELECT 1 FROM bought)
             AND c.user_id = $1 AND c.variant_id = x.id AND c.quantity <= x.q),
         fewer AS (
           UPDATE cart_items c SET quantity = c.quantity - x.q, updated_at = now()
           FROM unnest($2::uuid[], $3::bigint[]) AS x(id, q)
           WHERE EXISTS (SELECT 1 FROM bought)
             AND c.user_id = $1 AND c.variant_id = x.id AND c.quantity > x.q),
         spent AS (
           DELETE FROM cart_promotions
           WHERE EXISTS (SELECT 1 FROM bought) AND user_id = $1)
         DELETE FROM cart_claims WHERE user_id = $1 AND order_id = $4",
    )
    .bind(user_id)
    .bind(&ids)
    .bind(&quantities)
    .bind(body.order_id)
    .execute(&state.db)
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
