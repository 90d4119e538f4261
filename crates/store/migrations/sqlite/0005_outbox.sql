-- Messages to people (SMS, email, letter), written in the same transaction as what they
-- report and delivered afterwards by a worker, so a message is sent if and only if its
-- cause committed. The body is sealed (it may hold a one-time code).
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    person_id     TEXT REFERENCES persons(id),
    channel       TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    body_sealed   BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    sent_at       INTEGER,
    last_error    TEXT
);
CREATE INDEX outbox_due ON outbox(state, next_at);
CREATE INDEX outbox_person ON outbox(person_id, created_at);
