-- A pending authorization request belongs to the browser that started it: the hash of that browser's
-- binding cookie. A request opened in another browser starts over there (never a code).
ALTER TABLE auth_requests ADD COLUMN browser_hash TEXT;
