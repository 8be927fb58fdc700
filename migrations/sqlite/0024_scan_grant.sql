-- Scan to sign in, second review: an approval remembers the phone grant (family) that gave it, so that
-- Continue finishes only while that grant is still live (not revoked, not expired).
ALTER TABLE scan_requests ADD COLUMN family_id TEXT;
