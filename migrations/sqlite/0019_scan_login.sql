-- Scan to sign in: a login request shown as a QR code on the login page of one browser. The QR token and
-- the browser's handle are stored as hashes, with the hash of the browser's binding cookie; `status`
-- moves waiting -> scanned -> approved|denied -> used, each step one conditional UPDATE.
CREATE TABLE scan_requests (
    qr_hash TEXT PRIMARY KEY,
    handle_hash TEXT NOT NULL UNIQUE,
    browser_hash TEXT NOT NULL,
    client_id TEXT,
    address TEXT NOT NULL,
    number INTEGER NOT NULL,
    status TEXT NOT NULL,
    person_id TEXT,
    amr TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX scan_requests_expiry ON scan_requests(expires_at);
