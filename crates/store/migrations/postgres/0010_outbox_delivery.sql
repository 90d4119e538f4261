-- Delivery state of outbox messages, for support ("was the code sent?") and resend:
-- the transport's own id of an accepted message (SMTP reply, SMS gateway id), when the
-- last attempt was made, and the message a resend copied. `state`, `attempts`, `sent_at`
-- and `last_error` exist since 0005.
ALTER TABLE outbox ADD COLUMN provider_id TEXT;
ALTER TABLE outbox ADD COLUMN last_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN resent_from TEXT REFERENCES outbox(id);
CREATE INDEX outbox_created ON outbox(created_at);
