-- Review of online proofing and legal persons (issue 18). See the SQLite file for the reasons.
ALTER TABLE org_appointments ALTER COLUMN appointee_id DROP NOT NULL;
ALTER TABLE org_appointments ADD COLUMN appointee_label TEXT NOT NULL DEFAULT '';
ALTER TABLE org_appointments ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
UPDATE org_appointments SET expires_at = created_at + 1209600;
CREATE INDEX org_appointments_appointer ON org_appointments(appointer_id);

UPDATE org_bindings SET status = 'suspended', reason = 'duplicate', suspended_by = 'migration'
WHERE status = 'active' AND id NOT IN (SELECT MAX(id) FROM org_bindings WHERE status = 'active' GROUP BY org_id);
CREATE UNIQUE INDEX org_bindings_one_active ON org_bindings(org_id) WHERE status = 'active';

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
