-- An optional picture per product: an http(s) URL or a path the shop serves (the API checks
-- the shape; the database bounds the length as a last line).
ALTER TABLE products ADD COLUMN image_url text CHECK (char_length(image_url) <= 2048);
