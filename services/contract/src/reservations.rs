//! The product service's stock reservations, for the order service's checkout saga: reserve
//! (all or nothing, idempotent per order id), then commit, release or restock, and extend while
//! a payment waits for the shopper.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::OptionValues;

/// `POST`: reserve (`ReserveRequest` -> 201 `Reservation`, or 200 with the stored one on replay).
pub const RESERVE: &str = "/internal/reservations";

/// `GET` the reservation of an order.
pub fn of_order(order_id: Uuid) -> String {
    format!("{RESERVE}/{order_id}")
}

/// `POST` a step of the order's reservation: `commit`, `release`, `restock` (no body) or
/// `extend` (`ExtendRequest`); each answers the `Reservation`.
pub fn step(order_id: Uuid, step: &str) -> String {
    format!("{RESERVE}/{order_id}/{step}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReserveRequest {
    pub order_id: Uuid,
    pub items: Vec<ReserveItem>,
}

/// One line: a `variant_id`, or (a product without options, or a caller older than variants)
/// a `product_id`, which is then the variant's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReserveItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<Uuid>,
    pub quantity: i64,
}

impl ReserveItem {
    /// The variant this line reserves, if it names one at all.
    pub fn variant(&self) -> Option<Uuid> {
        self.variant_id.or(self.product_id)
    }
}

/// Hold the stock until this many seconds from now (1 s to 7 days); never shortens a hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtendRequest {
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: Uuid,
    /// `reserved`, `committed`, `released` or `restocked`.
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub lines: Vec<ReservationLine>,
}

/// A reserved line, priced by the catalog when it was reserved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ReservationLine {
    pub product_id: Uuid,
    /// Always set by this release; absent from product services older than variants (the line
    /// is then the product's own variant).
    #[serde(default)]
    pub variant_id: Option<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub option_values: OptionValues,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub currency: String,
}

impl ReservationLine {
    pub fn variant(&self) -> Uuid {
        self.variant_id.unwrap_or(self.product_id)
    }
}
