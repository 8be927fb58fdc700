-- Issue 17: an SSO code flow in four statements. The rows stay where the previous release reads and writes
-- them (families, codes, refresh_tokens: a rolling upgrade runs both releases side by side), but each of the
-- two writes of a step is now one statement, so one round trip and one commit:
--
-- 1. A code and its grant family are written together by one INSERT into the view `code_grants`, whose
--    INSTEAD OF trigger writes both rows.
-- 2. The first refresh token of a code's grant is stored by the statement that consumes the code: the
--    consuming UPDATE sets `refresh_hash` (and its expiry), and a trigger inserts that refresh token when, and
--    only when, this update is the one that marks the code used (and its family is not revoked). A node of the
--    previous release sets neither column, so the trigger does nothing for it and that node stores its refresh
--    token itself, as before.
--
-- A node checks at start that both triggers exist and are enabled (store::migrate::check_triggers). They fall
-- under the same expand/contract rule as columns: a later release that stops using them drops them one release
-- after that.

CREATE VIEW code_grants AS
SELECT c.code_hash, c.redirect_uri, c.code_challenge, c.expires_at AS code_expires_at,
       f.id AS family_id, f.client_id, f.person_id, f.session_sid, f.scope, f.claims, f.acr, f.amr,
       f.auth_time, f.nonce, f.created_at, f.expires_at, f.acting_rep_id, f.licence_types
FROM codes c JOIN families f ON f.id = c.family_id;

CREATE TRIGGER code_grants_insert INSTEAD OF INSERT ON code_grants
BEGIN
    INSERT INTO families (id, client_id, person_id, session_sid, scope, claims, acr, amr, auth_time, nonce,
                          created_at, expires_at, acting_rep_id, licence_types)
    VALUES (NEW.family_id, NEW.client_id, NEW.person_id, NEW.session_sid, NEW.scope, NEW.claims, NEW.acr,
            NEW.amr, NEW.auth_time, NEW.nonce, NEW.created_at, NEW.expires_at, NEW.acting_rep_id,
            NEW.licence_types);
    INSERT INTO codes (code_hash, client_id, redirect_uri, code_challenge, family_id, expires_at)
    VALUES (NEW.code_hash, NEW.client_id, NEW.redirect_uri, NEW.code_challenge, NEW.family_id,
            NEW.code_expires_at);
END;

ALTER TABLE codes ADD COLUMN refresh_hash TEXT;
ALTER TABLE codes ADD COLUMN refresh_expires_at INTEGER;

CREATE TRIGGER codes_first_refresh AFTER UPDATE OF used_at ON codes
WHEN OLD.used_at IS NULL AND NEW.used_at IS NOT NULL AND NEW.refresh_hash IS NOT NULL
BEGIN
    INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at)
    SELECT NEW.refresh_hash, NEW.family_id, NEW.used_at, NEW.refresh_expires_at
    WHERE EXISTS (SELECT 1 FROM families f WHERE f.id = NEW.family_id AND f.revoked_at IS NULL);
END;
