-- The chain head's hash follows each appended entry inside the INSERT itself, so an
-- append is two statements (advance the head, insert) instead of three.
CREATE TRIGGER audit_log_advance_head AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_head SET hash = NEW.hash WHERE id = 1;
END;
