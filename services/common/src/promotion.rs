//! The quote the cart asks the order service for (`POST /internal/promotions/quote`): what a
//! promotion code takes off a cart priced with current catalog prices. Always 200: a code that
//! is unknown (`promotion: null`) or does not apply (`applicable: false` with a `reason`) is an
//! answer the cart shows, not a failure.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuoteLine {
    pub product_id: Uuid,
    pub quantity: i64,
    pub unit_price_cents: i64,
    #[serde(default)]
    pub category_ids: Vec<Uuid>,
}

impl QuoteLine {
    pub fn total_cents(&self) -> i64 {
        self.unit_price_cents.saturating_mul(self.quantity)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuoteRequest {
    pub code: String,
    pub user_id: Uuid,
    pub lines: Vec<QuoteLine>,
}

/// What the shopper sees of a promotion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PromotionRef {
    pub code: String,
    pub kind: String,
    pub value: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LineShare {
    pub product_id: Uuid,
    pub discount_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quote {
    /// `None`: no usable promotion has this code (unknown or switched off).
    pub promotion: Option<PromotionRef>,
    pub applicable: bool,
    /// Why it does not apply: `expired`, `not_started`, `exhausted`, `min_subtotal`,
    /// `no_eligible_items` or `customer_limit`.
    pub reason: Option<String>,
    pub discount_cents: i64,
    pub lines: Vec<LineShare>,
}
