-- private_key_jwt clients may publish their keys at a URL instead of registering them by value
-- (a client has `jwks` or `jwks_uri`, never both).
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
