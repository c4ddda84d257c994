-- Category listings in price order from an index: each product-category link carries a copy
-- of its product's price and active flag, kept in sync by triggers in the writing transaction,
-- so `category + price range + price sort` reads the next rows of
-- (category_id, price_cents, product_id) instead of visiting every product of the category.

ALTER TABLE product_categories ADD COLUMN price_cents bigint, ADD COLUMN active boolean;
UPDATE product_categories pc SET price_cents = p.price_cents, active = p.active
  FROM products p WHERE p.id = pc.product_id;
ALTER TABLE product_categories ALTER COLUMN price_cents SET NOT NULL,
                               ALTER COLUMN active SET NOT NULL;
CREATE INDEX product_categories_active_price
    ON product_categories (category_id, price_cents, product_id) WHERE active;

-- A new link copies its product's values; `FOR SHARE` makes a concurrent price change wait
-- for this transaction, after which its own trigger (below) sees and updates this link.
CREATE FUNCTION souk_link_from_product() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT p.price_cents, p.active INTO NEW.price_cents, NEW.active
      FROM products p WHERE p.id = NEW.product_id FOR SHARE;
    RETURN NEW;
END $$;

CREATE FUNCTION souk_product_to_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE product_categories SET price_cents = NEW.price_cents, active = NEW.active
     WHERE product_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER product_categories_copy BEFORE INSERT OR UPDATE OF product_id ON product_categories
    FOR EACH ROW EXECUTE FUNCTION souk_link_from_product();
CREATE TRIGGER products_to_links AFTER UPDATE OF price_cents, active ON products
    FOR EACH ROW
    WHEN (OLD.price_cents IS DISTINCT FROM NEW.price_cents OR OLD.active IS DISTINCT FROM NEW.active)
    EXECUTE FUNCTION souk_product_to_links();
