-- The promotion code a shopper applied to the cart (one per cart). The order service decides
-- what it is worth, on every read and again, for good, at checkout.
CREATE TABLE cart_promotions (
    user_id     uuid PRIMARY KEY,
    code        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
