-- Every catalog change notifies channel `souk_catalog` inside the writing transaction, so each
-- product-service replica drops what it cached when (and only when) the change commits, whatever
-- the write path (admin API, reservations, the expiry sweeper, manual SQL). Payload: the product's
-- id, or `*` when a category changed (listings filter by category subtrees).

CREATE FUNCTION souk_notify_product() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('souk_catalog', OLD.id::text);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('souk_catalog', NEW.id::text);
    RETURN NEW;
END $$;

CREATE FUNCTION souk_notify_product_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('souk_catalog', OLD.product_id::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('souk_catalog', NEW.product_id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION souk_notify_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('souk_catalog', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER products_notify AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION souk_notify_product();
CREATE TRIGGER product_categories_notify AFTER INSERT OR UPDATE OR DELETE ON product_categories
    FOR EACH ROW EXECUTE FUNCTION souk_notify_product_category();
CREATE TRIGGER categories_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON categories
    FOR EACH STATEMENT EXECUTE FUNCTION souk_notify_all();
CREATE TRIGGER products_truncate_notify AFTER TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION souk_notify_all();
