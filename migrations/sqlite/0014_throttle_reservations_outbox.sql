-- Attempt counters reserved in one statement before a password (or a registration) is checked, so
-- concurrent attempts on any node cannot all pass the check; one row per key.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);
CREATE INDEX login_throttle_last ON login_throttle(last_at);

-- SMS waiting to be sent: sealed with the data-protection secret, claimed by one node at a time with a
-- lease, deleted once delivered (or expired). `sealed` is NULL for a number that gets no message: the
-- row is written all the same, so both answers cost the same.
CREATE TABLE sms_outbox (
    id TEXT PRIMARY KEY,
    sealed TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sms_outbox_due ON sms_outbox(next_attempt_at);
