//! The order service's internal endpoint for the payment service: what Stripe's webhooks said
//! about an order's payment, relayed once verified.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST` `PaymentEvent` -> 200, also for an event already applied (keyed by `event_id`) or an
/// order it does not concern.
pub fn payment_events(order_id: Uuid) -> String {
    format!("/internal/orders/{order_id}/payment-events")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentEventKind {
    PaymentSucceeded,
    PaymentFailed,
    Refunded,
}

impl PaymentEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentEventKind::PaymentSucceeded => "payment_succeeded",
            PaymentEventKind::PaymentFailed => "payment_failed",
            PaymentEventKind::Refunded => "refunded",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// Stripe's event id: the order service applies each one once.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: PaymentEventKind,
    #[serde(default)]
    pub payment_intent_id: Option<String>,
    /// For `refunded`: everything refunded on the charge so far.
    #[serde(default)]
    pub amount_refunded_cents: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_travel_as_their_names() {
        for kind in [
            PaymentEventKind::PaymentSucceeded,
            PaymentEventKind::PaymentFailed,
            PaymentEventKind::Refunded,
        ] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
    }
}
