-- Dynamic client registration (RFC 7591, RFC 7592): the initial access tokens admins issue, and the
-- registration record of each dynamically registered client (its management token, hashed, and the
-- metadata as registered). Times are epoch seconds; the tokens are stored as SHA-256 only.
CREATE TABLE registration_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    department TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    max_uses INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    revoked_at INTEGER,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE client_registrations (
    client_id TEXT PRIMARY KEY REFERENCES clients(id),
    access_token_hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    initial_token_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
