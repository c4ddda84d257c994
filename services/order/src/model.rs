//! The order as stored and as the API shows it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_common::address::ShippingAddress;
use souk_common::{ApiError, ApiResult};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::state::{OrderStatus, PaymentStatus, SagaState};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub saga_state: SagaState,
    pub requested_items: sqlx::types::Json<Vec<crate::clients::RequestedItem>>,
    pub payment_method: String,
    pub email: String,
    pub customer_name: String,
    pub shipping_address: sqlx::types::Json<ShippingAddress>,
    pub currency: Option<String>,
    pub subtotal_cents: Option<i64>,
    pub total_cents: Option<i64>,
    pub discount_cents: i64,
    pub promotion_code: Option<String>,
    pub payment_status: PaymentStatus,
    pub payment_intent_id: Option<String>,
    pub payment_client_secret: Option<String>,
    pub payment_next_action: Option<sqlx::types::Json<serde_json::Value>>,
    pub amount_refunded_cents: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderItem {
    pub product_id: Uuid,
    /// The variant bought (a product without options: the product's id).
    pub variant_id: Uuid,
    /// The options it was bought in; `{}` for a product without options.
    #[schema(schema_with = crate::openapi::option_values)]
    pub option_values: sqlx::types::Json<crate::clients::OptionValues>,
    pub sku: String,
    pub name: String,
    #[schema(minimum = 1)]
    pub quantity: i32,
    /// The price when the stock was reserved.
    #[schema(minimum = 0)]
    pub unit_price_cents: i64,
    /// `unit_price_cents * quantity`.
    #[schema(minimum = 0)]
    pub line_total_cents: i64,
    /// This line's share of the order's discount (largest-remainder allocation over the
    /// eligible lines; never more than `line_total_cents`). A refund of the line gives back
    /// `line_total_cents - discount_cents`.
    #[schema(minimum = 0)]
    pub discount_cents: i64,
}

/// The only payment provider (`OrderPayment.provider`).
pub const PAYMENT_PROVIDER: &str = "stripe";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = OrderPayment)]
pub struct PaymentView {
    #[schema(schema_with = crate::openapi::payment_status)]
    pub status: PaymentStatus,
    #[schema(schema_with = crate::openapi::payment_provider)]
    pub provider: &'static str,
    #[schema(required = true, examples("pi_3Q0abc"))]
    pub payment_intent_id: Option<String>,
    /// Only while `status` is `requires_action`: the PaymentIntent's client secret, for
    /// Stripe.js (`stripe.handleNextAction({clientSecret})`) to finish the payment (3-D
    /// Secure) in the shopper's browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("pi_3Q0abc_secret_xyz"))]
    pub client_secret: Option<String>,
    /// Stripe's own object, passed on as it came.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::openapi::next_action)]
    pub next_action: Option<serde_json::Value>,
    /// How much of the payment has been given back (a cancelled paid order, a payment that
    /// succeeded after its order stopped waiting).
    #[schema(minimum = 0)]
    pub amount_refunded_cents: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    /// Ordered by SKU.
    pub items: Vec<OrderItem>,
    /// Sum of the lines.
    #[schema(minimum = 0)]
    pub subtotal_cents: i64,
    /// The promotion's discount (0 without one); the lines' `discount_cents` sum to it.
    #[schema(minimum = 0)]
    pub discount_cents: i64,
    /// The promotion code redeemed with this order (a failed or cancelled order gave it back).
    #[schema(required = true)]
    pub promotion_code: Option<String>,
    /// What is charged: `subtotal_cents - discount_cents` (no shipping or tax yet). 0 (a
    /// 100 % discount): the order is paid without any charge (`payment.status` `not_required`).
    #[schema(minimum = 0)]
    pub total_cents: i64,
    /// Lowercase ISO 4217 code; the shop sells in one currency (default `usd`).
    #[schema(pattern = "^[a-z]{3}$", examples("usd"))]
    pub currency: String,
    #[schema(schema_with = crate::openapi::shipping_address)]
    pub shipping_address: ShippingAddress,
    pub payment: PaymentView,
    /// RFC 3339, UTC.
    pub created_at: DateTime<Utc>,
    /// RFC 3339, UTC.
    pub updated_at: DateTime<Utc>,
}

#[macro_export]
macro_rules! order_columns {
    () => {
        "id, user_id, status, saga_state, requested_items, payment_method, email, customer_name, \
         shipping_address, currency, subtotal_cents, total_cents, discount_cents, promotion_code, \
         payment_status, payment_intent_id, \
         payment_client_secret, payment_next_action, amount_refunded_cents, created_at, updated_at"
    };
}

pub async fn row<'e>(db: impl PgExecutor<'e>, id: Uuid) -> ApiResult<Option<OrderRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn items<'e>(db: impl PgExecutor<'e>, ids: &[Uuid]) -> ApiResult<Vec<(Uuid, OrderItem)>> {
    #[derive(sqlx::FromRow)]
    struct Line {
        order_id: Uuid,
        #[sqlx(flatten)]
        item: OrderItem,
    }
    let lines: Vec<Line> = sqlx::query_as(
        "SELECT order_id, product_id, variant_id, option_values, sku, name, quantity,
                unit_price_cents, line_total_cents, discount_cents
         FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, sku",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(lines.into_iter().map(|l| (l.order_id, l.item)).collect())
}

pub fn view(row: OrderRow, items: Vec<OrderItem>) -> Order {
    let waiting = row.payment_status == PaymentStatus::RequiresAction;
    Order {
        id: row.id,
        user_id: row.user_id,
        status: row.status,
        items,
        subtotal_cents: row.subtotal_cents.unwrap_or(0),
        discount_cents: row.discount_cents,
        promotion_code: row.promotion_code,
        total_cents: row.total_cents.unwrap_or(0),
        currency: row.currency.unwrap_or_default(),
        shipping_address: row.shipping_address.0,
        payment: PaymentView {
            status: row.payment_status,
            provider: PAYMENT_PROVIDER,
            payment_intent_id: row.payment_intent_id,
            client_secret: row.payment_client_secret.filter(|_| waiting),
            next_action: row.payment_next_action.map(|a| a.0).filter(|_| waiting),
            amount_refunded_cents: row.amount_refunded_cents,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Orders with their lines, in the order given.
pub async fn views(db: &sqlx::PgPool, rows: Vec<OrderRow>) -> ApiResult<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut lines = items(db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine: Vec<OrderItem> = lines
                .extract_if(.., |(id, _)| *id == row.id)
                .map(|(_, i)| i)
                .collect();
            view(row, mine)
        })
        .collect())
}

pub async fn load(db: &sqlx::PgPool, id: Uuid) -> ApiResult<Order> {
    let row = row(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such order"))?;
    with_items(db, row).await
}

/// The order of a row already read, with its lines.
pub async fn with_items(db: &sqlx::PgPool, row: OrderRow) -> ApiResult<Order> {
    Ok(views(db, vec![row]).await?.remove(0))
}
