//! The order service's internal endpoint for the cart service: what a promotion code takes off
//! a cart priced with current catalog prices. The order service owns promotions; the cart only
//! remembers the code and shows what this answer says it is worth now.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST` `QuoteRequest` -> `Quote`, read only. Always 200: a code that is unknown
/// (`promotion: null`) or does not apply (`applicable: false` with a `reason`) is an answer the
/// cart shows, not a failure.
pub const QUOTE: &str = "/internal/promotions/quote";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuoteRequest {
    pub code: String,
    pub user_id: Uuid,
    pub lines: Vec<QuoteLine>,
}

/// A cart line as a promotion sees it: promotions name products (and categories), not variants.
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

/// What the shopper sees of a promotion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PromotionRef {
    pub code: String,
    /// `percent` or `amount`.
    pub kind: String,
    pub value: i64,
}

/// A line's part of the discount (the parts sum to `Quote::discount_cents`).
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
