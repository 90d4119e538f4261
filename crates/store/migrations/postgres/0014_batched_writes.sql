-- A step's writes sent as one statement (db.rs, `Deferred`): each write that must change
-- exactly one row is counted, and if any count is wrong the statement fails with SQLSTATE
-- SG409, which undoes every write of the statement. segl then runs the step again in a
-- transaction.
CREATE FUNCTION segl_require(ok BOOLEAN) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'segl: a guarded write found its row changed' USING ERRCODE = 'SG409';
    END IF;
    RETURN TRUE;
END
$$;
