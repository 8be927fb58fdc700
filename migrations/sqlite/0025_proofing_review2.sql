-- Third proofing review (issue 18).
--
-- 0023 suspended the older of two active bindings of one organisation ("duplicate") but left the
-- representation behind it, and every agent or manager appointed under it, live. A binding suspended
-- as a duplicate never comes back (no registry answer restores it), so its representation is revoked
-- now; appointees under it lapse with it (their authority is checked up the chain at every use).
UPDATE representations SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER), version = version + 1
WHERE revoked_at IS NULL AND id IN (
    SELECT rep_id FROM org_bindings
    WHERE status = 'suspended' AND reason = 'duplicate' AND suspended_by = 'migration'
);
UPDATE org_bindings SET suspended_at = CAST(strftime('%s', 'now') AS INTEGER)
WHERE status = 'suspended' AND reason = 'duplicate' AND suspended_by = 'migration' AND suspended_at IS NULL;

-- When the registry sweep last restored a binding (an `active` answer after "gone"): the restore brake
-- counts these, so an "active for everything" answer stream cannot restore every suspended enterprise.
ALTER TABLE org_bindings ADD COLUMN restored_at INTEGER;

-- When the registry's answer last suspended a binding: the suspension brake counts these, so a binding
-- restored (or pinned by a super admin) since still counts for the 24 hours.
ALTER TABLE org_bindings ADD COLUMN registry_suspended_at INTEGER;
UPDATE org_bindings SET registry_suspended_at = suspended_at WHERE suspended_by = 'registry';

-- Indexes for the checks on the sign-in and token paths (every representation, every link of its
-- appointment chain: is it bound, is a binding of it held, was it accepted from an appointment) and
-- for the brakes' counts of suspensions and restores in their window.
CREATE INDEX org_bindings_rep ON org_bindings(rep_id);
CREATE INDEX org_appointments_rep ON org_appointments(rep_id);
CREATE INDEX org_bindings_restored ON org_bindings(restored_at);
CREATE INDEX org_bindings_registry_suspended ON org_bindings(registry_suspended_at);
