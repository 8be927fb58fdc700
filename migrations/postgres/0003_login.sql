-- SMS one-time codes, sending throttles, sign-in history, passkeys and WebAuthn ceremonies.
CREATE TABLE sms_codes (
    attempt_hash TEXT PRIMARY KEY,
    phone_hash TEXT NOT NULL,
    person_id TEXT,
    purpose TEXT NOT NULL,
    session_sid TEXT,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    tries BIGINT NOT NULL DEFAULT 0,
    used_at BIGINT
);

CREATE TABLE sms_sends (
    phone_hash TEXT NOT NULL,
    address TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX sms_sends_phone ON sms_sends(phone_hash, at);
CREATE INDEX sms_sends_address ON sms_sends(address, at);

CREATE TABLE login_events (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    method TEXT NOT NULL,
    address TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX login_events_person ON login_events(person_id, at);

CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    name TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_person ON passkeys(person_id);

CREATE TABLE webauthn_ceremonies (
    id_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    person_id TEXT,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
