-- segl's CA hierarchy and the certificates it issues. Private keys stay in the key store:
-- a row keeps only the key store's reference (a sealed blob for the software store, an
-- object id on a PKCS#11 token).
CREATE TABLE cas (
    name        TEXT PRIMARY KEY,          -- root, persons, persons-ocsp
    cert_der    BYTEA NOT NULL,
    key_store   TEXT NOT NULL,             -- software, pkcs11, or none (root imported without its key)
    key_ref     BYTEA,
    created_at  BIGINT NOT NULL
);

CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,          -- lower-case hex
    ca          TEXT NOT NULL REFERENCES cas(name),
    person_id   TEXT REFERENCES persons(id),
    cert_der    BYTEA NOT NULL,
    key_store   TEXT NOT NULL,
    key_ref     BYTEA NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    revoked_at  BIGINT,
    reason      TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX certificates_person ON certificates(person_id, not_after);
CREATE INDEX certificates_revoked ON certificates(revoked_at);

-- The latest CRL of each CA, and the counter its cRLNumber comes from.
CREATE TABLE crls (
    ca          TEXT PRIMARY KEY REFERENCES cas(name),
    number      BIGINT NOT NULL,
    der         BYTEA NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL
);
