-- Organisations (legal persons), representation, real-name verification details, acting for an organisation.
CREATE TABLE organisations (
    id TEXT PRIMARY KEY,
    credit_code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    org_type TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Lawful early pilot credit codes that fail the GB 32100 check character.
CREATE TABLE credit_code_allowlist (
    code TEXT PRIMARY KEY,
    added_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE representations (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    org_id TEXT NOT NULL REFERENCES organisations(id),
    role TEXT NOT NULL,
    matters TEXT NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_until INTEGER,
    granted_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX representations_person ON representations(person_id);
CREATE INDEX representations_org ON representations(org_id);

ALTER TABLE persons ADD COLUMN phone_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE persons ADD COLUMN real_name_verified_at INTEGER;
ALTER TABLE persons ADD COLUMN real_name_method TEXT;
ALTER TABLE persons ADD COLUMN real_name_verified_by TEXT;

ALTER TABLE clients ADD COLUMN matters TEXT NOT NULL DEFAULT '[]';

ALTER TABLE families ADD COLUMN acting_rep_id TEXT;
