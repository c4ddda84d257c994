-- One table of attempt counts for every throttle of this service (failed sign-ins per account
-- and per address, registrations per address), keyed `<what>:<who>`.
ALTER TABLE login_failures RENAME TO throttle;
ALTER TABLE throttle RENAME COLUMN failures TO attempts;
-- A key over its limit is refused until `blocked_until`; each block of a key lasts longer than
-- the last (`blocks` of them so far), until the row is pruned after a quiet day.
ALTER TABLE throttle ADD COLUMN blocked_until timestamptz;
ALTER TABLE throttle ADD COLUMN blocks integer NOT NULL DEFAULT 0;
CREATE INDEX throttle_window_start ON throttle (window_start);
