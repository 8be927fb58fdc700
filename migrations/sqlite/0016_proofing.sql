-- Online real-name proofing (services::proofing). Nothing here holds an ID number or an authority's
-- raw answer: a check is its connector, outcome, transaction id and time.

-- Every check yunid asked an authority for, for the admin's search and the per-person throttle's story.
CREATE TABLE proofing_checks (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    connector TEXT NOT NULL,
    outcome TEXT NOT NULL,
    transaction_id TEXT,
    address TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX proofing_checks_person ON proofing_checks(person_id, at);
CREATE INDEX proofing_checks_at ON proofing_checks(at);

-- The evidence behind a person's current online real-name level: one row per kind of check
-- (population, carrier, face), replaced when the level is raised again. Released as `verified_claims`.
CREATE TABLE proofing_evidence (
    person_id TEXT NOT NULL REFERENCES persons(id),
    check_type TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (person_id, check_type)
);

-- When the population record of a person proofed online was last found normal (re-checked after a TTL).
CREATE TABLE proofing_population (
    person_id TEXT PRIMARY KEY REFERENCES persons(id),
    state TEXT NOT NULL,
    checked_at INTEGER NOT NULL
);
CREATE INDEX proofing_population_checked ON proofing_population(checked_at);

-- A face verification session: opened for one person in one SSO session, answered once, short-lived.
-- `state_hash` is the hash of the random state in the return URL.
CREATE TABLE proofing_face_sessions (
    state_hash TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    sid TEXT NOT NULL,
    provider_session TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
