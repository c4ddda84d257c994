-- Payments that wait for the shopper (3-D Secure): what the client needs to finish them, and
-- `canceled` for a PaymentIntent called off at Stripe (payment window over, shopper's cancel).
ALTER TABLE payments ADD COLUMN client_secret text;
ALTER TABLE payments ADD COLUMN next_action jsonb;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN
    ('pending', 'processing', 'requires_action', 'succeeded', 'failed', 'canceled', 'refunded'));
