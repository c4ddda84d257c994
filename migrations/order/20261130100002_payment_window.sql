-- Payments that wait for the shopper (3-D Secure). `payment_deadline` ends the payment window
-- (then the PaymentIntent is cancelled at Stripe, then the stock released: `cancelling`);
-- `payment_checks` spaces out the polls of Stripe when no webhook comes (the recovery loop's
-- lease is the next poll's time); `late_success` marks a success that arrived while the order
-- was already being released or cancelled, so it is refunded instead of kept.
ALTER TABLE orders DROP CONSTRAINT orders_saga_state_check;
ALTER TABLE orders ADD CONSTRAINT orders_saga_state_check CHECK (saga_state IN
    ('claiming', 'reserving', 'charging', 'awaiting_payment', 'cancelling', 'completing', 'releasing',
     'refunding', 'done'));
ALTER TABLE orders ADD COLUMN payment_client_secret text;
ALTER TABLE orders ADD COLUMN payment_next_action jsonb;
ALTER TABLE orders ADD COLUMN payment_deadline timestamptz;
ALTER TABLE orders ADD COLUMN payment_checks integer NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN late_success boolean NOT NULL DEFAULT false;
