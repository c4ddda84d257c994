-- `claiming`: the order row exists before the checkout claims the shopper's cart, so a crash
-- between the two is seen (and the claim given back) by the recovery loop.
ALTER TABLE orders DROP CONSTRAINT orders_saga_state_check;
ALTER TABLE orders ADD CONSTRAINT orders_saga_state_check CHECK (saga_state IN
    ('claiming', 'reserving', 'charging', 'awaiting_payment', 'completing', 'releasing', 'refunding', 'done'));
