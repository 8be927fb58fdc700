-- An agent appointed by a legal representative or manager records the appointer's representation. The
-- agent acts only while that representation is current and still covers the agent's matters and time
-- (checked at use: services::identity::acting_options).
ALTER TABLE representations ADD COLUMN appointed_under TEXT REFERENCES representations(id);

-- Agents appointed before this column existed were recorded with `granted_by = 'person:<appointer>'`:
-- link each to that person's appointing representation of the same organisation. An agent an
-- administrator recorded who happens to be such a representative is linked too: it then lapses with
-- that representation, which fails closed.
UPDATE representations SET appointed_under = (
    SELECT a.id FROM representations a
    WHERE a.org_id = representations.org_id
      AND representations.granted_by = 'person:' || a.person_id
      AND a.person_id <> representations.person_id
      AND a.role IN ('legal_representative', 'manager')
      AND a.created_at <= representations.created_at
    ORDER BY a.created_at DESC, a.id DESC
    LIMIT 1)
WHERE role = 'agent' AND granted_by LIKE 'person:%';
