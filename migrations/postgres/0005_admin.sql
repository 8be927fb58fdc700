-- Administration: admin roles, department ownership of apps, and the hash-chained audit trail.
CREATE TABLE admin_roles (
    person_id TEXT NOT NULL REFERENCES persons(id),
    role TEXT NOT NULL,
    department TEXT NOT NULL DEFAULT '',
    granted_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (person_id, role, department)
);

ALTER TABLE clients ADD COLUMN department TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    address TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);

-- The chain's head (last seq and hash) and its anchor (the last pruned event), in one row.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    anchor_seq BIGINT NOT NULL,
    anchor_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, anchor_seq, anchor_hash) VALUES (1, 0, 'genesis', 0, 'genesis');
