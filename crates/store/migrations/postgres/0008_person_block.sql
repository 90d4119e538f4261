-- A blocked eID ("sperre", issue 5): when and why. A blocked person cannot log in or sign,
-- and no credential or certificate is made for them until a new identity check.
ALTER TABLE persons ADD COLUMN blocked_at BIGINT;
ALTER TABLE persons ADD COLUMN blocked_reason TEXT;
