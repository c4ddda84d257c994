-- What has been given back: a partial refund made in the Stripe dashboard, or all of it.
ALTER TABLE orders ADD COLUMN amount_refunded_cents bigint NOT NULL DEFAULT 0;
