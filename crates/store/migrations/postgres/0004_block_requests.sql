-- A person's request to block their eID, made where they notice a fraud attempt: "No,
-- that's not me" in the app, with "block my eID" (issue 3). The block itself (app
-- deactivated, code devices blocked, certificates revoked) is carried out by the
-- lifecycle; until then support sees the request.
CREATE TABLE block_requests (
    id             TEXT PRIMARY KEY,
    person_id      TEXT NOT NULL REFERENCES persons(id),
    source         TEXT NOT NULL,
    app_request_id TEXT,
    created_at     BIGINT NOT NULL,
    state          TEXT NOT NULL
);
CREATE INDEX block_requests_person ON block_requests(person_id, created_at);
