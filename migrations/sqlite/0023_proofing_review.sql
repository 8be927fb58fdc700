-- Review of online proofing and legal persons (issue 18).
--
-- An appointment may name nobody yunid knows: the appointer is answered the same whether or not the
-- ID number or phone they typed belongs to a registered person, and sees what they typed, masked,
-- never the appointee's name. Such an appointment can never be accepted and expires like any other.
-- Pending appointments expire (`expires_at`); rows made before this migration expire 14 days after
-- they were made.
CREATE TABLE org_appointments_new (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    appointer_id TEXT NOT NULL REFERENCES persons(id),
    appointee_id TEXT REFERENCES persons(id),
    appointee_label TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL,
    matters TEXT NOT NULL,
    valid_until INTEGER,
    status TEXT NOT NULL,
    rep_id TEXT REFERENCES representations(id),
    created_at INTEGER NOT NULL,
    decided_at INTEGER,
    ended_by TEXT,
    expires_at INTEGER NOT NULL DEFAULT 0
);
INSERT INTO org_appointments_new (id, org_id, appointer_id, appointee_id, role, matters, valid_until, status,
    rep_id, created_at, decided_at, ended_by, expires_at)
SELECT id, org_id, appointer_id, appointee_id, role, matters, valid_until, status, rep_id, created_at,
    decided_at, ended_by, created_at + 1209600 FROM org_appointments;
DROP TABLE org_appointments;
ALTER TABLE org_appointments_new RENAME TO org_appointments;
CREATE INDEX org_appointments_appointee ON org_appointments(appointee_id);
CREATE INDEX org_appointments_appointer ON org_appointments(appointer_id);
CREATE INDEX org_appointments_org ON org_appointments(org_id);

-- One active binding per organisation (so per credit code): a second bind racing the first fails here.
-- Older duplicates, if any, are suspended first.
UPDATE org_bindings SET status = 'suspended', reason = 'duplicate', suspended_by = 'migration'
WHERE status = 'active' AND id NOT IN (SELECT MAX(id) FROM org_bindings WHERE status = 'active' GROUP BY org_id);
CREATE UNIQUE INDEX org_bindings_one_active ON org_bindings(org_id) WHERE status = 'active';

-- Leases: one node at a time runs a named background job (the proofing re-check sweep) until
-- `expires_at`, across nodes.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
