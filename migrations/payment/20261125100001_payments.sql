-- One payment per order. The order id is the idempotency anchor: Stripe calls for it carry
-- `souk-order-{order_id}-charge` / `-refund`, so a retried charge replays instead of charging twice.
CREATE TABLE payments (
    order_id          uuid PRIMARY KEY,
    amount_cents      bigint NOT NULL CHECK (amount_cents > 0),
    currency          text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    payment_method    text NOT NULL,
    -- 'pending': recorded, Stripe's answer not yet known (a crash or timeout in between).
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN
                          ('pending', 'processing', 'requires_action', 'succeeded', 'failed', 'refunded')),
    payment_intent_id text UNIQUE,
    refund_id         text,
    failure_code      text,
    failure_message   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Stripe webhook events already acted on: inserted in the same transaction as the effect.
CREATE TABLE processed_events (
    event_id     text PRIMARY KEY,
    event_type   text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
