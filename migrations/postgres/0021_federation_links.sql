-- Upstream links keyed by the upstream's issuer and subject, not by the upstream's row id: the same
-- issuer registered again under another id finds its links, and another issuer registered under a
-- reused id finds none. `upstream_id` says which registration made the link (for the account page).
-- The issuer of an upstream is its discovery URL without `/.well-known/openid-configuration` (33
-- characters; discovery checks that the metadata's issuer says the same).
-- The same issuer may have been registered twice with one subject linked under both: the oldest link
-- is kept, the others dropped (`WHERE true` lets SQLite read the ON CONFLICT clause after a join).
CREATE TABLE upstream_links_by_issuer (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    person_id TEXT NOT NULL REFERENCES persons(id),
    upstream_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
INSERT INTO upstream_links_by_issuer (issuer, subject, person_id, upstream_id, created_at)
SELECT substr(u.discovery_url, 1, length(u.discovery_url) - 33), l.subject, l.person_id, l.upstream_id, l.created_at
FROM upstream_links l JOIN upstreams u ON u.id = l.upstream_id
WHERE true
ORDER BY l.created_at, l.upstream_id
ON CONFLICT (issuer, subject) DO NOTHING;
DROP TABLE upstream_links;
ALTER TABLE upstream_links_by_issuer RENAME TO upstream_links;
CREATE INDEX upstream_links_person ON upstream_links (person_id);

-- A person who unlinked an issuer: that issuer's verified numbers no longer link them by themselves;
-- only a link the person confirms after a yunid sign-in does (and removes this).
CREATE TABLE upstream_opt_outs (
    issuer TEXT NOT NULL,
    person_id TEXT NOT NULL REFERENCES persons(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, person_id)
);

-- The earliest upstream `auth_time` a sign-in accepts (the app asked for prompt=login or max_age).
ALTER TABLE upstream_flows ADD COLUMN min_auth_time BIGINT;
