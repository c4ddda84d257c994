-- Whether the payment's status was last set by a Stripe webhook. A status set from the
-- answer to one of the order service's own calls (charge, sync, cancel) is known to the order
-- service already, so a webhook that repeats it needs no notice to the order service.
ALTER TABLE payments ADD COLUMN status_from_webhook boolean NOT NULL DEFAULT false;
