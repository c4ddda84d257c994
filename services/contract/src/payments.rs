//! The payment service's internal endpoints, for the order service: charge an order once (by
//! order id, idempotent), read, sync, cancel or refund its payment, and queue its confirmation
//! e-mail.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::OptionValues;
use crate::users::ShippingAddress;

/// `POST` `ChargeRequest` -> `Payment`. A replay answers the payment's real state, never a
/// second charge; the same order with another amount, currency or method is 409
/// `idempotency_key_reused`.
pub const CHARGE: &str = "/internal/payments";

/// `GET` -> `Payment`; 404 when no charge was ever attempted for the order.
pub fn payment(order_id: Uuid) -> String {
    format!("{CHARGE}/{order_id}")
}

/// `POST` (no body) -> `Payment`: the payment's state, asked of Stripe while undecided.
pub fn sync(order_id: Uuid) -> String {
    format!("{CHARGE}/{order_id}/sync")
}

/// `POST` (no body) -> `Payment`: cancels a payment waiting for the shopper; `succeeded` if it
/// was too late. 404 when there is none.
pub fn cancel(order_id: Uuid) -> String {
    format!("{CHARGE}/{order_id}/cancel")
}

/// `POST` (no body) -> `Payment`: refunds what is left; 409 `not_refundable` when nothing is.
pub fn refund(order_id: Uuid) -> String {
    format!("{CHARGE}/{order_id}/refund")
}

/// `POST` `OrderConfirmation` -> 202 `Queued` the first time, 200 when already queued or sent.
pub const ORDER_CONFIRMATION: &str = "/internal/emails/order-confirmation";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargeRequest {
    pub order_id: Uuid,
    pub amount_cents: i64,
    /// Lowercase ISO 4217, e.g. `usd`.
    pub currency: String,
    /// A Stripe PaymentMethod id, e.g. `pm_card_visa`.
    pub payment_method: String,
}

/// An order's payment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payment {
    pub order_id: Uuid,
    /// `succeeded`, `failed`, `requires_action`, `processing`, `canceled` or `refunded`.
    pub status: String,
    pub payment_intent_id: Option<String>,
    /// While `requires_action`: what the client needs to finish the payment with Stripe.js.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub next_action: Option<serde_json::Value>,
    pub amount_cents: i64,
    /// Refunded so far: all of it once `refunded`, part of it after a dashboard refund.
    #[serde(default)]
    pub amount_refunded_cents: i64,
    pub currency: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

/// What the confirmation e-mail of a paid order says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderConfirmation {
    pub order_id: Uuid,
    /// The recipient's address.
    pub to: String,
    pub name: String,
    pub items: Vec<ConfirmationLine>,
    pub subtotal_cents: i64,
    /// What a promotion code took off (`total = subtotal - discount`).
    #[serde(default)]
    pub discount_cents: i64,
    #[serde(default)]
    pub promotion_code: Option<String>,
    pub total_cents: i64,
    pub currency: String,
    #[serde(default)]
    pub shipping_address: Option<ShippingAddress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfirmationLine {
    pub name: String,
    #[serde(default)]
    pub sku: String,
    /// The variant's options (`{"size": "M"}`); empty for a product without options.
    #[serde(default)]
    pub option_values: OptionValues,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    pub order_id: Uuid,
    /// `queued` or `sent`.
    pub status: String,
}
