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

-- Indexes for the checks on the sign-in and token paths (every representation, every link of its
-- appointment chain: is it bound, is a binding of it held, was it accepted from an appointment) and
-- for the brakes' counts of suspensions and restores in their window.
CREATE INDEX org_bindings_rep ON org_bindings(rep_id);
CREATE INDEX org_appointments_rep ON org_appointments(rep_id);
CREATE INDEX org_bindings_restored ON org_bindings(restored_at);
CREATE INDEX org_bindings_registry_suspended ON org_bindings(registry_suspended_at);
