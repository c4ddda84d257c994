-- Promotions belong to the order service: it prices orders, so the discount is decided and
-- redeemed in the same database (and transaction) as the order it lowers.
CREATE TABLE promotions (
    id                  uuid PRIMARY KEY,
    code                text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('percent', 'amount')),
    value               bigint NOT NULL CHECK (value > 0),
    min_subtotal_cents  bigint NOT NULL DEFAULT 0 CHECK (min_subtotal_cents >= 0),
    starts_at           timestamptz,
    ends_at             timestamptz,
    usage_limit         integer CHECK (usage_limit > 0),
    per_customer_limit  integer CHECK (per_customer_limit > 0),
    product_ids         uuid[] NOT NULL DEFAULT '{}',
    category_ids        uuid[] NOT NULL DEFAULT '{}',
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'percent' OR value <= 100)
);
-- Codes are compared case-insensitively.
CREATE UNIQUE INDEX promotions_code ON promotions (lower(code));

-- Every code a shopper can type: each promotion's own code (reusable, within its limits) and
-- its batch-generated single-use codes, in one table so that no two codes collide whatever
-- their kind. A single-use code is held by the order that redeemed it (`order_id`); a failed,
-- cancelled or removed order lets go of it.
CREATE TABLE promotion_codes (
    code          text NOT NULL,
    promotion_id  uuid NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    single_use    boolean NOT NULL,
    order_id      uuid REFERENCES orders (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX promotion_codes_code ON promotion_codes (lower(code));
CREATE INDEX promotion_codes_promotion ON promotion_codes (promotion_id);
CREATE INDEX promotion_codes_order ON promotion_codes (order_id) WHERE order_id IS NOT NULL;

-- One redemption per order, taken in the transaction that lets the order go on to reserve
-- stock. `redeemed` ones count against `usage_limit` and `per_customer_limit`.
CREATE TABLE redemptions (
    order_id              uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    promotion_id          uuid NOT NULL REFERENCES promotions (id),
    code                  text NOT NULL,
    user_id               uuid NOT NULL,
    state                 text NOT NULL DEFAULT 'redeemed' CHECK (state IN ('redeemed', 'released')),
    -- The cart's lines the promotion applies to, decided when it was redeemed.
    eligible_product_ids  uuid[] NOT NULL,
    discount_cents        bigint NOT NULL DEFAULT 0 CHECK (discount_cents >= 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    released_at           timestamptz
);
CREATE INDEX redemptions_counted ON redemptions (promotion_id, user_id) WHERE state = 'redeemed';

ALTER TABLE orders ADD COLUMN promotion_code text;
ALTER TABLE orders ADD COLUMN discount_cents bigint NOT NULL DEFAULT 0 CHECK (discount_cents >= 0);
ALTER TABLE order_items ADD COLUMN discount_cents bigint NOT NULL DEFAULT 0 CHECK (discount_cents >= 0);

-- A failed or cancelled order gives its redemption back in the very statement (hence
-- transaction) that changes its status, on every path (declined card, 3-D Secure failure or
-- expiry, cancel, a recovery after a crash): no path can forget it, and a status enters
-- `payment_failed`/`cancelled` at most once, so it is given back exactly once.
CREATE FUNCTION release_redemption() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE redemptions SET state = 'released', released_at = now()
     WHERE order_id = NEW.id AND state = 'redeemed';
    UPDATE promotion_codes SET order_id = NULL WHERE order_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_release_redemption AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (NEW.status IN ('payment_failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION release_redemption();
