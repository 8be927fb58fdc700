-- Logout tokens are signed when they are sent (fresh iat, exp and jti on every attempt): the outbox keeps
-- what the token says (subject, session id) instead of a token signed when the logout happened. Rows
-- queued before keep their signed token (subject NULL). The index serves the per-app limit of
-- deliveries in flight.
ALTER TABLE logout_deliveries ADD COLUMN subject TEXT;
ALTER TABLE logout_deliveries ADD COLUMN sid TEXT;
CREATE INDEX logout_deliveries_client ON logout_deliveries(client_id, locked_until);
