-- The admin console as an OIDC client of yunid: sign-ins under way (state, nonce, PKCE verifier) and
-- console sessions bound to the yunid session (sid) they came from. Keyed by the hash of the cookie value.
CREATE TABLE console_logins (
    id_hash TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    sid TEXT NOT NULL,
    acr BIGINT NOT NULL,
    id_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_sid ON console_sessions(sid);
