-- Orders of an eID (issue 5): who ordered, how they proved who they are, where the order
-- stands, and the activation codes (SHA-256 of 80-bit random codes; the codes themselves
-- travel only in the sealed outbox). An order is personal data
-- like the persons table; it is kept for support and the audit trail.
CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    number              TEXT NOT NULL UNIQUE,
    nin                 TEXT NOT NULL,
    name                TEXT NOT NULL,
    phone               TEXT,
    email               TEXT,
    address             TEXT,
    kind                TEXT NOT NULL,
    delivery            TEXT NOT NULL,
    guardian_nin        TEXT,
    state               TEXT NOT NULL,
    reason              TEXT,
    evidence            TEXT NOT NULL,
    evidence_summary    TEXT,
    identity_verified   INTEGER NOT NULL DEFAULT 0,
    decided_by          TEXT,
    guardian_person_id  TEXT REFERENCES persons(id),
    guardian_decided_at INTEGER,
    person_id           TEXT REFERENCES persons(id),
    code_hash           TEXT,
    second_code_hash    TEXT,
    code_expires_at     INTEGER,
    code_failures       INTEGER NOT NULL DEFAULT 0,
    device_serial       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    activated_at        INTEGER
);
CREATE INDEX orders_nin ON orders(nin, created_at);
CREATE INDEX orders_state ON orders(state, created_at);
CREATE INDEX orders_guardian ON orders(guardian_nin, state);

-- Control questions for a forgotten password: the answers are hashed (Argon2id), after
-- normalisation, like passwords.
CREATE TABLE control_questions (
    person_id   TEXT NOT NULL REFERENCES persons(id),
    idx         INTEGER NOT NULL,
    question    TEXT NOT NULL,
    answer_phc  TEXT NOT NULL,
    set_at      INTEGER NOT NULL,
    PRIMARY KEY (person_id, idx)
);
