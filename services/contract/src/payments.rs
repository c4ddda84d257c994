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
    /// Never `pending` (answered as `processing`) nor `not_required`.
    pub status: PaymentStatus,
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

/// A payment's status: the payment service's (`payments.status`, `Payment::status`) and the
/// order service's view of it (`orders.payment_status`, the order's `payment.status`). Stored
/// as its wire string in text columns, which CHECK constraints hold to these values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not charged yet (an order), or charged but Stripe's answer not recorded yet (a payment,
    /// answered as `processing`).
    Pending,
    Processing,
    /// Waiting for the shopper (3-D Secure): `client_secret` and `next_action` say how.
    RequiresAction,
    Succeeded,
    Failed,
    /// Called off at Stripe (payment window over, the shopper's cancel, the dashboard).
    Canceled,
    /// All of it given back.
    Refunded,
    /// An order of total 0: nothing to charge. The order service's only.
    NotRequired,
}

impl PaymentStatus {
    pub const ALL: &'static [PaymentStatus] = &[
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::RequiresAction,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Canceled,
        PaymentStatus::Refunded,
        PaymentStatus::NotRequired,
    ];

    /// The status as it travels and as it is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::RequiresAction => "requires_action",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::NotRequired => "not_required",
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status this release does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPaymentStatus(pub String);

impl std::fmt::Display for UnknownPaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown payment status `{}`", self.0)
    }
}

impl std::error::Error for UnknownPaymentStatus {}

impl std::str::FromStr for PaymentStatus {
    type Err = UnknownPaymentStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownPaymentStatus(s.to_owned()))
    }
}

/// Read from and written to a `text` column as its wire string; a value outside the list fails
/// to decode rather than being guessed at.
#[cfg(feature = "sqlx")]
mod sql {
    use sqlx::Postgres;
    use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};

    use super::PaymentStatus;

    impl sqlx::Type<Postgres> for PaymentStatus {
        fn type_info() -> PgTypeInfo {
            <str as sqlx::Type<Postgres>>::type_info()
        }

        fn compatible(ty: &PgTypeInfo) -> bool {
            <str as sqlx::Type<Postgres>>::compatible(ty)
        }
    }

    impl sqlx::Encode<'_, Postgres> for PaymentStatus {
        fn encode_by_ref(
            &self,
            buf: &mut PgArgumentBuffer,
        ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
            <&str as sqlx::Encode<Postgres>>::encode(self.as_str(), buf)
        }
    }

    impl sqlx::Decode<'_, Postgres> for PaymentStatus {
        fn decode(value: PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
            let text = <&str as sqlx::Decode<Postgres>>::decode(value)?;
            Ok(text.parse()?)
        }
    }

    impl PgHasArrayType for PaymentStatus {
        fn array_type_info() -> PgTypeInfo {
            <&str as PgHasArrayType>::array_type_info()
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payment_status_round_trips_its_wire_string() {
        for &status in PaymentStatus::ALL {
            let wire = status.as_str();
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::Value::from(wire));
            assert_eq!(
                serde_json::from_value::<PaymentStatus>(json).unwrap(),
                status
            );
            assert_eq!(wire.parse::<PaymentStatus>(), Ok(status));
            assert_eq!(status.to_string(), wire);
        }
        let wires: std::collections::HashSet<_> =
            PaymentStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(wires.len(), PaymentStatus::ALL.len());
    }

    #[test]
    fn an_unknown_payment_status_is_refused() {
        for unknown in ["requires_capture", "Succeeded", "", "cancelled"] {
            assert_eq!(
                unknown.parse::<PaymentStatus>(),
                Err(UnknownPaymentStatus(unknown.to_owned()))
            );
            assert!(serde_json::from_value::<PaymentStatus>(unknown.into()).is_err());
        }
    }

    #[test]
    fn a_payment_reads_as_it_did_with_a_text_status() {
        let wire = serde_json::json!({
            "order_id": "0b5f8d3e-0000-4000-8000-000000000001",
            "status": "requires_action",
            "payment_intent_id": "pi_1",
            "client_secret": "pi_1_secret",
            "next_action": {"type": "use_stripe_sdk"},
            "amount_cents": 2500,
            "amount_refunded_cents": 0,
            "currency": "usd",
            "failure_code": null,
            "failure_message": null,
        });
        let payment: Payment = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(payment.status, PaymentStatus::RequiresAction);
        assert_eq!(serde_json::to_value(&payment).unwrap(), wire);
        let mut refused = wire;
        refused["status"] = "requires_capture".into();
        assert!(serde_json::from_value::<Payment>(refused).is_err());
    }
}
