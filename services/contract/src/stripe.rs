//! What Souk asks of Stripe's side: the webhook events the payment service acts on. Stripe's
//! endpoint (or the local emulator's registration) subscribes to exactly these; any other event
//! that arrives is acknowledged and ignored.

/// The event types of `POST /api/v1/payments/webhook`.
pub const WEBHOOK_EVENTS: [&str; 3] = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
];
