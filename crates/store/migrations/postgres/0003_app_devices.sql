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
