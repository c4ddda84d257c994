-- node-e2e.sh's failed upgrade: a migration that always fails (its transaction rolls back, so
-- nothing of it is recorded), leaving the Shop Degraded on the version it ran.
SELECT 1 / 0;
