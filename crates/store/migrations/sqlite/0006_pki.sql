-- segl's CA hierarchy and the certificates it issues. Private keys stay in the key store:
-- a row keeps only the key store's reference (a sealed blob for the software store, an
-- object id on a PKCS#11 token).
CREATE TABLE cas (
    name        TEXT PRIMARY KEY,          -- root, persons, persons-ocsp
    cert_der    BLOB NOT NULL,
    key_store   TEXT NOT NULL,             -- software, pkcs11, or none (root imported without its key)
    key_ref     BLOB,
    created_at  INTEGER NOT NULL
);

CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,          -- lower-case hex
    ca          TEXT NOT NULL REFERENCES cas(name),
    person_id   TEXT REFERENCES persons(id),
    cert_der    BLOB NOT NULL,
    key_store   TEXT NOT NULL,
    key_ref     BLOB NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    revoked_at  INTEGER,
    reason      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX certificates_person ON certificates(person_id, not_after);
CREATE INDEX certificates_revoked ON certificates(revoked_at);

-- The latest CRL of each CA, and the counter its cRLNumber comes from.
CREATE TABLE crls (
    ca          TEXT PRIMARY KEY REFERENCES cas(name),
    number      INTEGER NOT NULL,
    der         BLOB NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL
);
