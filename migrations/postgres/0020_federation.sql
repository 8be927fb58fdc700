-- Upstream OpenID Connect providers yunid signs people in through (identity brokering), the links
-- between an upstream's subjects and yunid persons, the sign-ins under way at an upstream, the offers
-- to link an account after a yunid sign-in, and which yunid session came from which upstream session
-- (for the upstream's back-channel logout).
CREATE TABLE upstreams (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    logo_url TEXT,
    discovery_url TEXT NOT NULL,
    client_id TEXT NOT NULL,
    -- Secrets::encrypt, associated data `upstream:<id>`; NULL with private_key_jwt.
    client_secret_enc TEXT,
    auth_method TEXT NOT NULL,
    scopes TEXT NOT NULL,
    -- JSON: claim names and level/acr mappings (services::federation::Mapping).
    mapping TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    -- 'api' (admin API) or 'config' (the configuration file; rewritten at every start).
    source TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE upstream_links (
    upstream_id TEXT NOT NULL REFERENCES upstreams(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    person_id TEXT NOT NULL REFERENCES persons(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (upstream_id, subject)
);
CREATE INDEX upstream_links_person ON upstream_links (person_id);

-- A sign-in under way at an upstream: keyed by the hash of `state`, bound to the browser (hash of its
-- binding secret); the nonce is kept as a hash, the PKCE verifier sealed. Used once.
CREATE TABLE upstream_flows (
    state_hash TEXT PRIMARY KEY,
    upstream_id TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    req TEXT,
    nonce_hash TEXT NOT NULL,
    verifier_enc TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

-- An upstream account that no yunid person could be found for: linked to whoever signs in to yunid
-- next in the same browser, once.
CREATE TABLE upstream_link_offers (
    id_hash TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    upstream_id TEXT NOT NULL REFERENCES upstreams(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE upstream_sessions (
    sid TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    upstream_sid TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX upstream_sessions_subject ON upstream_sessions (upstream_id, subject);

-- Logout tokens seen (`jti`), so that one replayed later ends no newer session.
CREATE TABLE upstream_logout_jtis (
    upstream_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (upstream_id, jti)
);
