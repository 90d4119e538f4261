-- The phone app's device keys (issue 3). The server keeps the public key only; app_id is
-- what the app shows and what support searches by. One active device per person: the
-- partial unique index refuses a second, so "activate new, deactivate old" must happen in
-- one transaction (store::apps::activate).
CREATE TABLE app_devices (
    app_id          TEXT PRIMARY KEY,
    person_id       TEXT NOT NULL REFERENCES persons(id),
    public_key      TEXT NOT NULL UNIQUE,
    label           TEXT,
    state           TEXT NOT NULL,
    activated_at    BIGINT NOT NULL,
    deactivated_at  BIGINT,
    deactivated_why TEXT,
    last_seen_at    BIGINT
);
CREATE UNIQUE INDEX app_devices_one_active ON app_devices(person_id) WHERE state = 'active';

-- Approval requests sent to a device ("Yes, it's me"). Decided once: the guarded UPDATE in
-- store::apps::decide lets exactly one of two racing answers win.
CREATE TABLE app_requests (
    id                TEXT PRIMARY KEY,
    person_id         TEXT NOT NULL REFERENCES persons(id),
    app_id            TEXT NOT NULL REFERENCES app_devices(app_id),
    flow_id           TEXT NOT NULL,
    rp_name           TEXT NOT NULL,
    text              TEXT NOT NULL,
    verification_code TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    state             TEXT NOT NULL,
    decided_at        BIGINT,
    user_verification TEXT,
    signature         TEXT
);
CREATE INDEX app_requests_app ON app_requests(app_id, state);
CREATE INDEX app_requests_flow ON app_requests(flow_id);

-- Activations of a new app: started with the eID, with codes by SMS and email, or from the
-- old phone. Only the SHA-256 of each one-time code is kept. The security period and the
-- completion window are applied by core::app::activation_phase from started_at.
CREATE TABLE app_activations (
    id               TEXT PRIMARY KEY,
    person_id        TEXT NOT NULL REFERENCES persons(id),
    method           TEXT NOT NULL,
    code_hash        TEXT NOT NULL UNIQUE,
    second_code_hash TEXT,
    started_at       BIGINT NOT NULL,
    failures         BIGINT NOT NULL DEFAULT 0,
    state            TEXT NOT NULL,
    app_id           TEXT,
    ended_at         BIGINT
);
CREATE INDEX app_activations_person ON app_activations(person_id, state);
