-- node-e2e.sh's upgrade release: one harmless new migration (an index) in product, as the next
-- release would bring. The sleep keeps its Job running for a while, so the test sees the old
-- version serving meanwhile; it comes first, so no lock on products is held during it.
SELECT pg_sleep(10);
CREATE INDEX products_e2e_upgrade ON products (updated_at);
