-- Issue 17: an SSO code flow in four statements. See the SQLite file for the reasons; the same two
-- triggers, written as PL/pgSQL functions.

CREATE VIEW code_grants AS
SELECT c.code_hash, c.redirect_uri, c.code_challenge, c.expires_at AS code_expires_at,
       f.id AS family_id, f.client_id, f.person_id, f.session_sid, f.scope, f.claims, f.acr, f.amr,
       f.auth_time, f.nonce, f.created_at, f.expires_at, f.acting_rep_id, f.licence_types
FROM codes c JOIN families f ON f.id = c.family_id;

CREATE FUNCTION code_grants_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO families (id, client_id, person_id, session_sid, scope, claims, acr, amr, auth_time, nonce,
                          created_at, expires_at, acting_rep_id, licence_types)
    VALUES (NEW.family_id, NEW.client_id, NEW.person_id, NEW.session_sid, NEW.scope, NEW.claims, NEW.acr,
            NEW.amr, NEW.auth_time, NEW.nonce, NEW.created_at, NEW.expires_at, NEW.acting_rep_id,
            NEW.licence_types);
    INSERT INTO codes (code_hash, client_id, redirect_uri, code_challenge, family_id, expires_at)
    VALUES (NEW.code_hash, NEW.client_id, NEW.redirect_uri, NEW.code_challenge, NEW.family_id,
            NEW.code_expires_at);
    RETURN NEW;
END
$$;

CREATE TRIGGER code_grants_insert INSTEAD OF INSERT ON code_grants
FOR EACH ROW EXECUTE FUNCTION code_grants_insert();

ALTER TABLE codes ADD COLUMN refresh_hash TEXT;
ALTER TABLE codes ADD COLUMN refresh_expires_at BIGINT;

CREATE FUNCTION codes_first_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at)
    SELECT NEW.refresh_hash, NEW.family_id, NEW.used_at, NEW.refresh_expires_at
    WHERE EXISTS (SELECT 1 FROM families f WHERE f.id = NEW.family_id AND f.revoked_at IS NULL);
    RETURN NULL;
END
$$;

CREATE TRIGGER codes_first_refresh AFTER UPDATE OF used_at ON codes
FOR EACH ROW WHEN (OLD.used_at IS NULL AND NEW.used_at IS NOT NULL AND NEW.refresh_hash IS NOT NULL)
EXECUTE FUNCTION codes_first_refresh();
