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

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrderItem {
    pub product_id: Uuid,
    pub variant_id: Uuid,
    /// The options it was bought in; `{}` for a product without options.
    pub option_values: sqlx::types::Json<crate::clients::OptionValues>,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
    /// This line's share of the order's discount (the shares sum to it).
    pub discount_cents: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentView {
    pub status: PaymentStatus,
    pub provider: &'static str,
    pub payment_intent_id: Option<String>,
    /// While `requires_action`: for Stripe.js to finish the payment (3-D Secure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action: Option<serde_json::Value>,
    pub amount_refunded_cents: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub subtotal_cents: i64,
    /// What the promotion took off; `total_cents = subtotal_cents - discount_cents`.
    pub discount_cents: i64,
    pub promotion_code: Option<String>,
    pub total_cents: i64,
    pub currency: String,
    pub shipping_address: ShippingAddress,
    pub payment: PaymentView,
    pub created_at: DateTime<Utc>,
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
            provider: "stripe",
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
    Ok(views(db, vec![row]).await?.remove(0))
}
