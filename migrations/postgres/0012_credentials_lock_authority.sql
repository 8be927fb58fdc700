-- Who set an account's lock or disabling: 1 when a super admin did (then only a super admin lifts it).
ALTER TABLE persons ADD COLUMN locked_by_super INTEGER NOT NULL DEFAULT 0;
-- Before this column only super admins could lock or disable: every account locked or disabled until now
-- was a super admin's decision.
UPDATE persons SET locked_by_super = 1 WHERE status <> 'active';
