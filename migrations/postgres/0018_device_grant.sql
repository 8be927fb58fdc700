-- Device authorization grant (RFC 8628): one row per device authorization request. The device code and
-- the user code are stored as hashes only; `status` moves pending -> approved|denied -> used, each step
-- one conditional UPDATE, so a code is redeemed once whatever node the polls reach.
CREATE TABLE device_grants (
    device_hash TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    person_id TEXT,
    session_sid TEXT,
    acr BIGINT,
    amr TEXT,
    auth_time BIGINT,
    interval_secs BIGINT NOT NULL,
    last_poll_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_grants_expiry ON device_grants(expires_at);

-- Apps marked as kiosk or counter-screen clients: what they obtain through the device grant lives at
-- most `session_ttl` seconds (NULL: the ordinary refresh limits).
CREATE TABLE device_clients (
    client_id TEXT PRIMARY KEY,
    session_ttl BIGINT
);
