-- Refunds by amount: a partial refund made in the Stripe dashboard (charge.refunded) is
-- recorded here, and a later cancel refunds only the remainder.
ALTER TABLE payments ADD COLUMN amount_refunded_cents bigint NOT NULL DEFAULT 0;
