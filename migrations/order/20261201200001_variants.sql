-- Order lines are per variant (a product without options is its own one variant, same id, so
-- existing lines keep their meaning); a line shows the options it was bought in.
ALTER TABLE order_items ADD COLUMN variant_id uuid;
UPDATE order_items SET variant_id = product_id;
ALTER TABLE order_items ALTER COLUMN variant_id SET NOT NULL,
    ADD COLUMN option_values jsonb NOT NULL DEFAULT '{}',
    DROP CONSTRAINT order_items_pkey,
    ADD PRIMARY KEY (order_id, variant_id);

-- A release from before variants may still run during a rolling upgrade: its lines are the
-- product's own variant.
CREATE FUNCTION souk_order_line_variant_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.variant_id := coalesce(NEW.variant_id, NEW.product_id);
    RETURN NEW;
END $$;
CREATE TRIGGER order_items_variant_default BEFORE INSERT ON order_items
    FOR EACH ROW EXECUTE FUNCTION souk_order_line_variant_default();
