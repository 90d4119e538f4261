-- Signing orders of relying parties (issue 4): what the person is asked to sign, who
-- signed it and how, and the results. Documents keep the PDF to sign (or the digest of
-- another file) until the order ends; the results stay for the relying party to fetch.
CREATE TABLE sign_orders (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients(client_id),
    state          TEXT NOT NULL,          -- pending, approved, signed, failed, cancelled
    text           TEXT NOT NULL,
    login_hint     TEXT,                   -- national identity number the order is for
    redirect_uri   TEXT,
    rp_state       TEXT,
    ui_locales     TEXT NOT NULL,
    flow_id        TEXT,                   -- the latest sign flow of the order
    person_id      TEXT REFERENCES persons(id),
    method         TEXT,                   -- otp or app
    amr            TEXT,                   -- JSON array
    approval       TEXT,                   -- JSON: the app's signed approval, when by app
    cert_serial    TEXT,
    ocsp_der       BLOB,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    signed_at      INTEGER
);
CREATE INDEX sign_orders_client ON sign_orders(client_id, created_at);

CREATE TABLE sign_documents (
    order_id   TEXT NOT NULL REFERENCES sign_orders(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,              -- pdf or digest
    digest     BLOB NOT NULL,              -- SHA-256 of the content (pdf) or as given
    content    BLOB,                       -- the PDF, kind pdf only
    cms        BLOB,
    signed_pdf BLOB,
    PRIMARY KEY (order_id, idx)
);
