-- Order confirmation e-mails waiting to be accepted by the SMTP server. One per order, ever.
CREATE TABLE email_outbox (
    id              uuid PRIMARY KEY,
    order_id        uuid NOT NULL,
    kind            text NOT NULL DEFAULT 'order_confirmation',
    recipient       text NOT NULL,
    recipient_name  text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT email_outbox_one_per_order UNIQUE (order_id, kind)
);

-- What the sender polls: unsent messages by due time.
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE sent_at IS NULL;
