-- Legal persons by themselves (services::proofing::orgs): an organisation a legal representative bound
-- through the legal-person registry, and the appointments they make, pending until the appointee accepts.

CREATE TABLE org_bindings (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    person_id TEXT NOT NULL REFERENCES persons(id),
    rep_id TEXT NOT NULL REFERENCES representations(id),
    status TEXT NOT NULL,
    reason TEXT,
    transaction_id TEXT NOT NULL,
    bound_at BIGINT NOT NULL,
    checked_at BIGINT NOT NULL,
    suspended_at BIGINT,
    suspended_by TEXT
);
CREATE INDEX org_bindings_person ON org_bindings(person_id);
CREATE INDEX org_bindings_org ON org_bindings(org_id);
CREATE INDEX org_bindings_checked ON org_bindings(status, checked_at);

CREATE TABLE org_appointments (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    appointer_id TEXT NOT NULL REFERENCES persons(id),
    appointee_id TEXT NOT NULL REFERENCES persons(id),
    role TEXT NOT NULL,
    matters TEXT NOT NULL,
    valid_until BIGINT,
    status TEXT NOT NULL,
    rep_id TEXT REFERENCES representations(id),
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    ended_by TEXT
);
CREATE INDEX org_appointments_appointee ON org_appointments(appointee_id);
CREATE INDEX org_appointments_org ON org_appointments(org_id);
