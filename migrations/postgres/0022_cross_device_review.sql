-- Cross-device sign-in, after review. A scan request remembers the authorization request it was shown for
-- (the hash of its id; NULL: yunid's own account page) and that request's max_age, so that it finishes
-- only for that request and never with a phone sign-in older than the app accepts; an approval keeps the
-- phone grant's acr and auth_time, which the browser's session takes over. A device request keeps the
-- address it was asked from (its network is shown on the consent page).
ALTER TABLE scan_requests ADD COLUMN request_hash TEXT;
ALTER TABLE scan_requests ADD COLUMN max_age BIGINT;
ALTER TABLE scan_requests ADD COLUMN acr BIGINT;
ALTER TABLE scan_requests ADD COLUMN auth_time BIGINT;
ALTER TABLE device_grants ADD COLUMN address TEXT NOT NULL DEFAULT '';
