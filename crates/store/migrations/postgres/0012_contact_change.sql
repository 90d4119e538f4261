-- A change of phone or email asked for on My page (issue 5), waiting for the code sent to
-- the new address. The code is stored as a hash; the change applies only once the right
-- code is entered before `expires_at`, with at most a few wrong tries (then
-- `cancelled_at` is set). A newer request for the same kind cancels the older one.
-- Keep in step with ../sqlite/0012_contact_change.sql.
CREATE TABLE contact_changes (
    id            TEXT PRIMARY KEY,
    person_id     TEXT NOT NULL REFERENCES persons(id),
    which         TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    new_value     TEXT NOT NULL,
    code_hash     TEXT NOT NULL,
    failures      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    cancelled_at  BIGINT
);
-- `seq` orders one person's changes of one kind (times are whole seconds); unique, so two
-- requests at once cannot both become the latest.
CREATE UNIQUE INDEX contact_changes_order ON contact_changes(person_id, which, seq);
