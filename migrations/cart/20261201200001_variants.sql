-- Cart lines are per variant (a product without options is its own one variant, same id, so
-- every existing line keeps its meaning). `product_id` stays for display and promotions.
ALTER TABLE cart_items RENAME COLUMN product_id TO variant_id;
ALTER TABLE cart_items ADD COLUMN product_id uuid;
UPDATE cart_items SET product_id = variant_id;
ALTER TABLE cart_items ALTER COLUMN product_id SET NOT NULL,
    -- Last seen, like the name and price, for reads while the product service is down.
    ADD COLUMN last_option_values jsonb NOT NULL DEFAULT '{}';
