-- Issue 17: an SMS login in twelve statements. Sending a code was six: the throttle's lock rows, the send
-- record and their commit, the code (which also finds the person), the outbox row, and the outbox row's
-- delete once delivered. The first five become one INSERT into the view `sms_code_sends`, whose INSTEAD OF
-- trigger writes the same rows the previous release writes (sms_sends, sms_codes, sms_outbox: a rolling
-- upgrade runs both releases side by side, and each reads what the other wrote).
--
-- The statement's own SELECT decides whether the limits allow the send (`allowed`, 1 or 0: the phone's
-- hourly cap, the address's hourly cap, the phone's cooldown) and finds the person of a login's phone;
-- `RETURNING allowed, person_id` tells the caller. The trigger decides the limits again itself, so an insert
-- that claims `allowed` wrongly writes nothing (SQLite cannot report a trigger's decision through RETURNING,
-- hence the SELECT's); it writes the rows only when the send is allowed, and the message only for a number
-- that has a person (the row is written all the same, so a registered number's answer costs what an unknown
-- one's does). On SQLite a writing statement holds the database's write lock from its first step, so the
-- SELECT and the trigger see the same sends and no other send is counted in between, on any connection or
-- process; PostgreSQL decides inside its trigger after taking lock rows, and finds a login's person again
-- there (`lookup_phone`, used by PostgreSQL's trigger only; see its file).
--
-- A node checks at start that the trigger exists (store::migrate::check_triggers). Same expand/contract rule
-- as columns: a later release that stops using it drops it one release after that.

CREATE VIEW sms_code_sends AS
SELECT CAST(NULL AS TEXT) AS attempt_hash, CAST(NULL AS TEXT) AS phone_hash, CAST(NULL AS TEXT) AS person_id,
       CAST(NULL AS TEXT) AS lookup_phone, CAST(NULL AS TEXT) AS purpose, CAST(NULL AS TEXT) AS session_sid,
       CAST(NULL AS TEXT) AS code_hash,
       CAST(NULL AS INTEGER) AS created_at, CAST(NULL AS INTEGER) AS expires_at, CAST(NULL AS TEXT) AS address,
       CAST(NULL AS INTEGER) AS hour_since, CAST(NULL AS INTEGER) AS per_phone_hour,
       CAST(NULL AS INTEGER) AS per_address_hour, CAST(NULL AS INTEGER) AS cooldown_since,
       CAST(NULL AS TEXT) AS outbox_id, CAST(NULL AS TEXT) AS sealed, CAST(NULL AS INTEGER) AS attempts,
       CAST(NULL AS INTEGER) AS locked_until, CAST(NULL AS INTEGER) AS allowed
WHERE 1 = 0;

CREATE TRIGGER sms_code_sends_insert INSTEAD OF INSERT ON sms_code_sends
WHEN NEW.allowed = 1
 AND (SELECT COUNT(*) FROM sms_sends WHERE phone_hash = NEW.phone_hash AND at >= NEW.hour_since)
     < NEW.per_phone_hour
 AND (SELECT COUNT(*) FROM sms_sends WHERE address = NEW.address AND at >= NEW.hour_since)
     < NEW.per_address_hour
 AND COALESCE((SELECT MAX(at) FROM sms_sends WHERE phone_hash = NEW.phone_hash), NEW.cooldown_since)
     <= NEW.cooldown_since
BEGIN
    INSERT INTO sms_sends (phone_hash, address, at) VALUES (NEW.phone_hash, NEW.address, NEW.created_at);
    INSERT INTO sms_codes (attempt_hash, phone_hash, person_id, purpose, session_sid, code_hash, created_at,
                           expires_at)
    VALUES (NEW.attempt_hash, NEW.phone_hash, NEW.person_id, NEW.purpose, NEW.session_sid, NEW.code_hash,
            NEW.created_at, NEW.expires_at);
    INSERT INTO sms_outbox (id, sealed, attempts, next_attempt_at, locked_until, expires_at)
    VALUES (NEW.outbox_id, CASE WHEN NEW.person_id IS NOT NULL THEN NEW.sealed END, NEW.attempts,
            NEW.created_at, NEW.locked_until, NEW.expires_at);
END;
