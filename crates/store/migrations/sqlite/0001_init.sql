-- segl schema v1 (SQLite). Keep in step with ../postgres/0001_init.sql.
-- Times are unix seconds (INTEGER); flags are 0/1 INTEGER so one set of queries serves both backends.

CREATE TABLE persons (
    id          TEXT PRIMARY KEY,
    sub         TEXT NOT NULL UNIQUE,
    nin         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    birthdate   TEXT NOT NULL,
    phone       TEXT,
    email       TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE passwords (
    person_id   TEXT PRIMARY KEY REFERENCES persons(id),
    phc         TEXT NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,
    locked      INTEGER NOT NULL DEFAULT 0,
    changed_at  INTEGER NOT NULL
);

CREATE TABLE otp_devices (
    serial        TEXT PRIMARY KEY,
    manufacturer  TEXT,
    kind          TEXT NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        INTEGER NOT NULL,
    secret        BLOB NOT NULL,
    counter       INTEGER NOT NULL DEFAULT 0,
    step          INTEGER NOT NULL DEFAULT 30,
    t0            INTEGER NOT NULL DEFAULT 0,
    drift         INTEGER NOT NULL DEFAULT 0,
    last_step     INTEGER,
    failures      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'active',
    person_id     TEXT REFERENCES persons(id),
    imported_at   INTEGER NOT NULL
);
CREATE INDEX otp_devices_person ON otp_devices(person_id);

CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT,
    auth_method   TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    jwks          TEXT,
    id_token_alg  TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE flows (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    binding_hash  TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    data          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX flows_expires ON flows(expires_at);

CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons(id),
    auth_time   INTEGER NOT NULL,
    acr         TEXT NOT NULL,
    amr         TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_person ON sessions(person_id);

CREATE TABLE auth_codes (
    code_hash   TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    person_id   TEXT NOT NULL,
    grant_id    TEXT NOT NULL,
    grant_data  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

CREATE TABLE access_tokens (
    token_hash  TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    person_id   TEXT NOT NULL,
    grant_id    TEXT NOT NULL,
    grant_data  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_grant ON access_tokens(grant_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    person_id   TEXT NOT NULL,
    grant_id    TEXT NOT NULL,
    grant_data  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);

CREATE TABLE par_requests (
    uri_hash    TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    params      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE used_jtis (
    key         TEXT PRIMARY KEY,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY,
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    ts         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    subject    TEXT,
    client_id  TEXT,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log(subject);
