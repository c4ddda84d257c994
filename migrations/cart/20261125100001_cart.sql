-- One cart per user: the cart is the set of a user's lines.
CREATE TABLE cart_items (
    user_id               uuid NOT NULL,
    product_id            uuid NOT NULL,
    quantity              integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    -- Last catalog values seen, shown (flagged stale) while the product service is down.
    last_name             text NOT NULL,
    last_unit_price_cents bigint NOT NULL,
    last_currency         text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, product_id)
);

-- Orders already subtracted from carts, so a retried notification changes nothing.
CREATE TABLE cart_orders (
    order_id   uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
