-- Third proofing review (issue 18). See the SQLite file for the reasons.
UPDATE representations SET revoked_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT), version = version + 1
WHERE revoked_at IS NULL AND id IN (
    SELECT rep_id FROM org_bindings
    WHERE status = 'suspended' AND reason = 'duplicate' AND suspended_by = 'migration'
);
UPDATE org_bindings SET suspended_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)
WHERE status = 'suspended' AND reason = 'duplicate' AND suspended_by = 'migration' AND suspended_at IS NULL;

ALTER TABLE org_bindings ADD COLUMN restored_at BIGINT;

ALTER TABLE org_bindings ADD COLUMN registry_suspended_at BIGINT;
UPDATE org_bindings SET registry_suspended_at = suspended_at WHERE suspended_by = 'registry';
