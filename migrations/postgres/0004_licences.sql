-- E-licences (GB/T 36901-36906-2018): the type catalogue, licence records, which types each app may
-- receive, and the upstream library cache.
CREATE TABLE licence_types (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    authority TEXT NOT NULL,
    holder_kind TEXT NOT NULL,
    released_fields TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE licences (
    id TEXT PRIMARY KEY,
    type_code TEXT NOT NULL REFERENCES licence_types(code),
    number TEXT NOT NULL,
    issuer_name TEXT NOT NULL,
    issuer_code TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    holder_code_type TEXT NOT NULL,
    holder_code_hash TEXT NOT NULL,
    holder_code_enc TEXT NOT NULL,
    issued_on TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT,
    area_code TEXT NOT NULL,
    status TEXT NOT NULL,
    surface TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX licences_holder ON licences(holder_code_hash);

CREATE TABLE client_licence_types (
    client_id TEXT NOT NULL,
    type_code TEXT NOT NULL,
    PRIMARY KEY (client_id, type_code)
);

CREATE TABLE licence_fetches (
    holder_code_hash TEXT PRIMARY KEY,
    fetched_at BIGINT NOT NULL
);

ALTER TABLE families ADD COLUMN licence_types TEXT NOT NULL DEFAULT '';
