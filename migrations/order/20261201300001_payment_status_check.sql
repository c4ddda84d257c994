-- `status` and `saga_state` are checked; `payment_status` now is too (the values the order
-- service's `PaymentStatus` reads back: any other would fail to load the order).
ALTER TABLE orders ADD CONSTRAINT orders_payment_status_check CHECK (payment_status IN
    ('pending', 'processing', 'requires_action', 'succeeded', 'failed', 'canceled', 'refunded',
     'not_required'));
