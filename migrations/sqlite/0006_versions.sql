-- Optimistic concurrency for admin edits: every edit bumps the row's version (the ETag), and an edit
-- based on an older version is refused (clients.version came with 0005).
ALTER TABLE persons ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE organisations ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE representations ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

-- A temporary password set at a service counter: refused after it expires, and must be replaced at the
-- next sign-in.
ALTER TABLE persons ADD COLUMN password_expires_at INTEGER;
ALTER TABLE persons ADD COLUMN password_must_change INTEGER NOT NULL DEFAULT 0;
