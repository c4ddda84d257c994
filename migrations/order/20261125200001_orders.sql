-- An order is written before any other step of checkout, and each step's outcome is saved
-- before the next one starts (`saga_state`), so a crash anywhere is finished or compensated by
-- the recovery loop. `lease_until` keeps the recovery loop away from a checkout still running.
CREATE TABLE orders (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'paid', 'payment_failed', 'shipped', 'delivered', 'cancelled')),
    saga_state         text NOT NULL CHECK (saga_state IN ('reserving', 'charging', 'awaiting_payment', 'completing', 'releasing', 'refunding', 'done')),
    lease_until        timestamptz,
    idempotency_key    text NOT NULL,
    request_hash       bytea NOT NULL,
    requested_items    jsonb NOT NULL,
    payment_method     text NOT NULL,
    email              text NOT NULL,
    customer_name      text NOT NULL,
    shipping_address   jsonb NOT NULL,
    currency           text,
    subtotal_cents     bigint,
    total_cents        bigint,
    payment_status     text NOT NULL DEFAULT 'pending',
    payment_intent_id  text,
    failure_code       text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_idempotency_key UNIQUE (user_id, idempotency_key)
);
CREATE INDEX orders_user_newest ON orders (user_id, id DESC);
CREATE INDEX orders_status_newest ON orders (status, id DESC);
CREATE INDEX orders_unfinished ON orders (saga_state) WHERE saga_state <> 'done';

CREATE TABLE order_items (
    order_id          uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id        uuid NOT NULL,
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    line_total_cents  bigint NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- Payment events from the payment service, applied once each.
CREATE TABLE processed_payment_events (
    event_id    text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);
