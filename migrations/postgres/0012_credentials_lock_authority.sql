-- Who set an account's lock or disabling: 1 when a super admin did (then only a super admin lifts it).
ALTER TABLE persons ADD COLUMN locked_by_super INTEGER NOT NULL DEFAULT 0;
