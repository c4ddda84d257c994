-- Catalog: categories (a tree), products, their categories, and stock reservations.

CREATE TABLE categories (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    slug       text NOT NULL CONSTRAINT categories_slug_key UNIQUE,
    parent_id  uuid CONSTRAINT categories_parent_fkey REFERENCES categories (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX categories_parent ON categories (parent_id);

CREATE TABLE products (
    id          uuid PRIMARY KEY,
    sku         text NOT NULL CONSTRAINT products_sku_key UNIQUE,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    price_cents bigint NOT NULL CONSTRAINT products_price_nonnegative CHECK (price_cents >= 0),
    currency    text NOT NULL,
    -- Available to sell: units held by open reservations are already taken out.
    stock       bigint NOT NULL CONSTRAINT products_stock_nonnegative CHECK (stock >= 0),
    active      boolean NOT NULL DEFAULT true,
    search      tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', name), 'A') ||
                    setweight(to_tsvector('english', description), 'B')) STORED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Listing indexes: only active products are ever listed, so the indexes are partial.
-- `newest` is id order (UUID v7 ids are time-ordered).
CREATE INDEX products_active_newest ON products (id) WHERE active;
CREATE INDEX products_active_price ON products (price_cents, id) WHERE active;
-- fastupdate off: catalog writes are rare and a pending list makes the planner shun the index.
CREATE INDEX products_active_search ON products USING gin (search) WITH (fastupdate = off) WHERE active;

CREATE TABLE product_categories (
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    category_id uuid NOT NULL CONSTRAINT product_categories_category_fkey REFERENCES categories (id),
    PRIMARY KEY (product_id, category_id)
);
CREATE INDEX product_categories_category ON product_categories (category_id, product_id);

CREATE TABLE reservations (
    order_id   uuid PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reservations_expiring ON reservations (expires_at) WHERE status = 'reserved';

CREATE TABLE reservation_lines (
    order_id         uuid NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    product_id       uuid NOT NULL REFERENCES products (id),
    sku              text NOT NULL,
    name             text NOT NULL,
    quantity         bigint NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint NOT NULL,
    currency         text NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
