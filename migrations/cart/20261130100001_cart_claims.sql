-- A checkout's hold on a user's cart: at most one at a time, so a cart is bought at most once.
-- Taken by the order service before it reserves stock; dropped when the order is paid (together
-- with the bought lines) or gives up before charging (the cart is given back as it is).
CREATE TABLE cart_claims (
    user_id    uuid PRIMARY KEY,
    order_id   uuid NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
