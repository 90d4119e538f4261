-- An append is one statement on PostgreSQL (see audit.rs): it updates the chain's head
-- once, computing the new entry's hash in the UPDATE from the head's previous values, and
-- inserts the entry from what the UPDATE returns. The head keeps its previous hash too,
-- because RETURNING only sees the new row. The trigger that moved the head's hash after
-- the INSERT (a second update of the same row per entry) is no longer needed.
ALTER TABLE audit_head ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
DROP TRIGGER audit_log_advance_head ON audit_log;
DROP FUNCTION audit_log_advance_head();

-- The entry's hash exactly as `chain_hash` in audit.rs computes it: SHA-256 (hex) of the
-- compact JSON array [prev, seq, ts, event, subject, client_id, data]. PostgreSQL's JSON
-- string escaping (json.c, escape_json) and serde_json's are the same: \" \\ \b \f \n \r \t,
-- other control characters as \u00xx in lower-case hex, everything else as it is.
-- `segl audit verify` recomputes every hash in Rust, and the store's tests check both agree.
CREATE FUNCTION audit_chain_hash(prev TEXT, seq BIGINT, ts BIGINT, event TEXT, subject TEXT,
                                 client_id TEXT, data TEXT) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(
        '[' || to_json(prev)::text || ',' || seq::text || ',' || ts::text || ','
            || to_json(event)::text || ','
            || coalesce(to_json(subject)::text, 'null') || ','
            || coalesce(to_json(client_id)::text, 'null') || ','
            || to_json(data)::text || ']',
        'UTF8')), 'hex')
$$;
