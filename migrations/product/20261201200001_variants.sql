-- Variants: what is sold and stocked. A product may have `options` (at most 3, e.g.
-- [{"name": "size", "values": ["S", "M", "L"]}]) and then one variant per sold combination.
-- A product without options has exactly one variant whose id (and SKU) is the product's, so
-- every existing product, cart line, reservation and order line keeps its meaning.
--
-- Stock and price live on the variant. The product's `stock` (the sum over active variants) and `price_cents` (its
-- lowest active variant price) are kept by a trigger in the writing transaction, so listings,
-- their indexes, the category price links and the cache notifications work unchanged.
-- Writers lock the product row before its variants (see `reservations.rs`), so the trigger's
-- product update never waits on a lock taken in the other order.

ALTER TABLE products ADD COLUMN options jsonb NOT NULL DEFAULT '[]'
    CONSTRAINT products_options_array CHECK (jsonb_typeof(options) = 'array');

CREATE TABLE variants (
    id            uuid PRIMARY KEY,
    product_id    uuid NOT NULL REFERENCES products (id),
    sku           text NOT NULL CONSTRAINT variants_sku_key UNIQUE,
    -- {"size": "M", "colour": "red"}; `{}` for the one variant of a product without options.
    option_values jsonb NOT NULL DEFAULT '{}'
                  CONSTRAINT variants_option_values_object CHECK (jsonb_typeof(option_values) = 'object'),
    price_cents   bigint NOT NULL CONSTRAINT variants_price_nonnegative CHECK (price_cents >= 0),
    -- Available to sell: units held by open reservations are already taken out.
    stock         bigint NOT NULL CONSTRAINT variants_stock_nonnegative CHECK (stock >= 0),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- jsonb equality ignores key order: one variant per combination.
    CONSTRAINT variants_combination_key UNIQUE (product_id, option_values)
);

INSERT INTO variants (id, product_id, sku, option_values, price_cents, stock, active, created_at, updated_at)
SELECT id, id, sku, '{}', price_cents, stock, true, created_at, updated_at FROM products;

-- The product's sum and lowest price follow its variants; a change also tells every replica's
-- cache (the product row may not change, e.g. when a variant is switched off at the same price).
CREATE FUNCTION souk_variant_to_product() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pid uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.product_id ELSE NEW.product_id END;
BEGIN
    UPDATE products p SET stock = s.stock, price_cents = s.price_cents
      FROM (SELECT coalesce(sum(v.stock) FILTER (WHERE v.active), 0)::bigint AS stock,
                   coalesce(min(v.price_cents) FILTER (WHERE v.active), min(v.price_cents), 0)::bigint
                       AS price_cents
              FROM variants v WHERE v.product_id = pid) s
     WHERE p.id = pid AND (p.stock, p.price_cents) IS DISTINCT FROM (s.stock, s.price_cents);
    PERFORM pg_notify('souk_catalog', pid::text);
    RETURN NULL;
END $$;

CREATE TRIGGER variants_to_product AFTER INSERT OR UPDATE OR DELETE ON variants
    FOR EACH ROW EXECUTE FUNCTION souk_variant_to_product();

-- Reservation lines are per variant; `product_id` stays for reporting and promotions.
ALTER TABLE reservation_lines ADD COLUMN variant_id uuid;
UPDATE reservation_lines SET variant_id = product_id;
ALTER TABLE reservation_lines ALTER COLUMN variant_id SET NOT NULL,
    ADD CONSTRAINT reservation_lines_variant_fkey FOREIGN KEY (variant_id) REFERENCES variants (id),
    ADD COLUMN option_values jsonb NOT NULL DEFAULT '{}',
    DROP CONSTRAINT reservation_lines_pkey,
    ADD PRIMARY KEY (order_id, variant_id);

-- A release from before variants may still run during a rolling upgrade (or after a rollback).
-- Its writes stay correct for products without options: a reservation line it inserts gets the
-- product's own variant, and a stock change it writes on the product row goes to that variant
-- (a direct statement only: the variant trigger's own update of the product runs deeper).
-- Products with options have no variant of their id, so such a release cannot reserve them.
CREATE FUNCTION souk_line_variant_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.variant_id := coalesce(NEW.variant_id, NEW.product_id);
    RETURN NEW;
END $$;
CREATE TRIGGER reservation_lines_variant_default BEFORE INSERT ON reservation_lines
    FOR EACH ROW EXECUTE FUNCTION souk_line_variant_default();

CREATE FUNCTION souk_product_stock_to_variant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() = 1 THEN
        UPDATE variants SET stock = stock + (NEW.stock - OLD.stock) WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER products_stock_to_variant AFTER UPDATE OF stock ON products
    FOR EACH ROW WHEN (OLD.stock IS DISTINCT FROM NEW.stock)
    EXECUTE FUNCTION souk_product_stock_to_variant();
