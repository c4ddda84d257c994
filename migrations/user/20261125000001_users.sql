CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text NOT NULL,
    password_hash    text NOT NULL,
    name             text NOT NULL,
    role             text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    shipping_address jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique whatever their case; the constraint name maps to 409 email_taken.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Refresh tokens are stored only as SHA-256 hashes. Every rotation stays in one family, so the
-- reuse of a spent token can revoke the whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Failed logins per account and per client address, in fixed windows. Kept in the database so
-- every replica of the user service sees the same counts.
CREATE TABLE login_failures (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    failures     integer NOT NULL
);
