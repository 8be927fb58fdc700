//! SMS codes and their sending throttles, sign-in history, passkeys and WebAuthn ceremony state.

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone)]
pub struct SmsCode {
    pub phone_hash: String,
    pub person_id: Option<String>,
    pub purpose: String,
    pub session_sid: Option<String>,
    pub code_hash: String,
    pub expires_at: i64,
    pub tries: i64,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct LoginEvent {
    pub at: i64,
    pub method: String,
    pub address: String,
    pub outcome: String,
}

#[derive(Debug, Clone)]
pub struct PasskeyRow {
    pub id: String,
    pub person_id: String,
    pub name: String,
    pub credential_id: String,
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A progressive limit on attempts against one key (an account, an address, an ID number).
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Attempts let through before the key is held back (at least 1).
    pub max: i64,
    /// How long the key is held back after its latest attempt, doubling for every further `max`.
    pub window: i64,
    /// Attempts older than this are forgotten.
    pub forget_before: i64,
}

/// A leaky bucket (`services::new_codes`): `burst` takes at once, then one per `interval_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub burst: i64,
    pub interval_ms: i64,
}

/// Limits on sending SMS codes: per phone (hourly cap, cooldown) and per address (hourly cap).
#[derive(Debug, Clone, Copy)]
pub struct SendLimits {
    pub per_phone_hour: i64,
    pub per_address_hour: i64,
    pub cooldown: i64,
}

impl Db {
    /// Reserves one attempt against `key` unless it is held back: below `max` attempts (since
    /// `forget_before`) nothing is held back; from `max` on, the key waits `window` after its latest
    /// attempt, doubling for every further `max` attempts (at most 32 windows). One statement (the
    /// upsert locks the row), so concurrent attempts on any node cannot all pass: at most `max` get
    /// through before the hold. False when held back (nothing is counted then).
    pub async fn reserve_attempt(&self, key: &str, limit: Limit, now: i64) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "INSERT INTO login_throttle (key, attempts, last_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             attempts = CASE WHEN login_throttle.last_at < $3 THEN 1 ELSE login_throttle.attempts + 1 END, \
             last_at = $2 \
             WHERE login_throttle.last_at < $3 OR login_throttle.attempts < $4 \
             OR $2 - login_throttle.last_at >= $5 * CASE (login_throttle.attempts - $4) / $4 \
             WHEN 0 THEN 1 WHEN 1 THEN 2 WHEN 2 THEN 4 WHEN 3 THEN 8 WHEN 4 THEN 16 ELSE 32 END \
             RETURNING attempts",
        )
        .bind(key)
        .bind(now)
        .bind(limit.forget_before)
        .bind(limit.max.max(1))
        .bind(limit.window)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Takes one from the leaky bucket `key` (stored in `login_throttle`: `attempts` is the level in
    /// milliseconds of drain, `last_at` when it was last charged). The level drains 1000 a second; each
    /// take adds `interval_ms`, refused or not, up to twice the bucket's size. One statement (the upsert
    /// locks the row), so concurrent takes on any node are all counted. `None` when taken; else the
    /// seconds until a take would pass.
    pub async fn take_from_bucket(
        &self,
        key: &str,
        bucket: Bucket,
        now: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let size = bucket.burst.max(1) * bucket.interval_ms;
        let level: i64 = sqlx::query_scalar(
            "INSERT INTO login_throttle (key, attempts, last_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET attempts = CASE \
               WHEN login_throttle.attempts - 1000 * (CASE WHEN $3 > login_throttle.last_at \
                 THEN $3 - login_throttle.last_at ELSE 0 END) <= 0 THEN $2 \
               WHEN login_throttle.attempts - 1000 * (CASE WHEN $3 > login_throttle.last_at \
                 THEN $3 - login_throttle.last_at ELSE 0 END) + $2 > $4 THEN $4 \
               ELSE login_throttle.attempts - 1000 * (CASE WHEN $3 > login_throttle.last_at \
                 THEN $3 - login_throttle.last_at ELSE 0 END) + $2 END, \
             last_at = CASE WHEN $3 > login_throttle.last_at THEN $3 ELSE login_throttle.last_at END \
             RETURNING attempts",
        )
        .bind(key)
        .bind(bucket.interval_ms)
        .bind(now)
        .bind(size + bucket.interval_ms)
        .fetch_one(&self.pool)
        .await?;
        if level <= size {
            return Ok(None);
        }
        // Drained to `size - interval_ms` the next take passes.
        let over = level - (size - bucket.interval_ms);
        Ok(Some((over + 999) / 1000))
    }

    /// Gives back a reserved attempt that turned out not to be a failure (or was never tried).
    pub async fn refund_attempt(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE login_throttle SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets every attempt against `key` (after a successful sign-in to the account).
    pub async fn clear_attempts(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// One code to send, as the statement that counts the send, writes the code and queues its message sees
/// it (`Db::send_sms_code`).
pub struct SmsSend<'a> {
    pub attempt_hash: &'a str,
    /// The code's row: `person_id` is the person of a step-up; a login's is found by `lookup_phone`.
    pub code: &'a SmsCode,
    /// A login's phone (E.164): its person, if it is a verified phone of an active person, is the code's.
    pub lookup_phone: Option<&'a str>,
    /// The address bucket the send is counted against.
    pub address: &'a str,
    pub limits: SendLimits,
    pub outbox_id: &'a str,
    /// The message, sealed; stored only when the code has a person.
    pub sealed: &'a str,
    /// Claimed by this node's worker until then (its first attempt counted), or `None`: left for any
    /// node's sweep.
    pub claimed_until: Option<i64>,
}

/// What the send statement decided.
#[derive(Debug, PartialEq, Eq)]
pub struct SendOutcome {
    /// The limits allowed the send: the send is counted, the code written and its message queued.
    pub allowed: bool,
    /// The code's person (a login's: found by its phone), if any.
    pub person_id: Option<String>,
}

impl Db {
    /// Counts a send against the limits, and when they allow it writes the code and queues its message
    /// (with nothing to send when the code has no person), in one statement: an insert into the view
    /// `sms_code_sends`, whose trigger decides the limits again and writes the rows the previous release
    /// writes (migration 0027, which says why concurrent sends on any node cannot all pass). The
    /// statement's own decision and person are what SQLite reports; PostgreSQL's trigger replaces both
    /// with its own, made after it waited for the lock rows.
    pub async fn send_sms_code(&self, s: &SmsSend<'_>, now: i64) -> Result<SendOutcome, sqlx::Error> {
        let (attempts, locked_until) = match s.claimed_until {
            Some(until) => (1, until),
            None => (0, 0),
        };
        let row = sqlx::query(
            "INSERT INTO sms_code_sends (attempt_hash, phone_hash, person_id, lookup_phone, purpose, \
             session_sid, code_hash, created_at, expires_at, address, hour_since, per_phone_hour, \
             per_address_hour, cooldown_since, outbox_id, sealed, attempts, locked_until, allowed) \
             SELECT $1, $2, COALESCE($3, (SELECT id FROM persons WHERE phone = $4 AND phone_verified = 1 \
             AND status = 'active')), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             CASE WHEN (SELECT COUNT(*) FROM sms_sends WHERE phone_hash = $2 AND at >= $11) < $12 \
             AND (SELECT COUNT(*) FROM sms_sends WHERE address = $10 AND at >= $11) < $13 \
             AND COALESCE((SELECT MAX(at) FROM sms_sends WHERE phone_hash = $2), $14) <= $14 \
             THEN 1 ELSE 0 END RETURNING allowed, person_id",
        )
        .bind(s.attempt_hash)
        .bind(&s.code.phone_hash)
        .bind(&s.code.person_id)
        .bind(s.lookup_phone)
        .bind(&s.code.purpose)
        .bind(&s.code.session_sid)
        .bind(&s.code.code_hash)
        .bind(now)
        .bind(s.code.expires_at)
        .bind(s.address)
        .bind(now - 3600)
        .bind(s.limits.per_phone_hour)
        .bind(s.limits.per_address_hour)
        .bind(now - s.limits.cooldown)
        .bind(s.outbox_id)
        .bind(s.sealed)
        .bind(attempts)
        .bind(locked_until)
        .fetch_one(&self.pool)
        .await?;
        let allowed: i64 = row.try_get("allowed")?;
        Ok(SendOutcome {
            allowed: allowed == 1,
            person_id: row.try_get("person_id")?,
        })
    }

    pub async fn insert_sms_code(
        &self,
        attempt_hash: &str,
        c: &SmsCode,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sms_codes (attempt_hash, phone_hash, person_id, purpose, session_sid, code_hash, \
             created_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(attempt_hash)
        .bind(&c.phone_hash)
        .bind(&c.person_id)
        .bind(&c.purpose)
        .bind(&c.session_sid)
        .bind(&c.code_hash)
        .bind(now)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn sms_code(&self, attempt_hash: &str) -> Result<Option<SmsCode>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT phone_hash, person_id, purpose, session_sid, code_hash, expires_at, tries, used_at \
             FROM sms_codes WHERE attempt_hash = $1",
        )
        .bind(attempt_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let used: Option<i64> = r.try_get("used_at")?;
            Ok(SmsCode {
                phone_hash: r.try_get("phone_hash")?,
                person_id: r.try_get("person_id")?,
                purpose: r.try_get("purpose")?,
                session_sid: r.try_get("session_sid")?,
                code_hash: r.try_get("code_hash")?,
                expires_at: r.try_get("expires_at")?,
                tries: r.try_get("tries")?,
                used: used.is_some(),
            })
        })
        .transpose()
    }

    /// Counts a wrong code; false when the attempt is already out of tries.
    pub async fn sms_wrong_try(&self, attempt_hash: &str, max: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE sms_codes SET tries = tries + 1 WHERE attempt_hash = $1 AND tries < $2 AND used_at IS NULL",
        )
        .bind(attempt_hash)
        .bind(max)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Uses a code once, if `code_hash` is its code, it belongs to a person and it is unused, unexpired
    /// and within its tries: the code's person, purpose and session for the one caller that did (one
    /// statement: the read and the use of a right code are the same write). Not used while `unanswered`
    /// names a pending request whose answered marker exists (review M1: a code is not spent on it).
    pub async fn sms_use_matching(
        &self,
        attempt_hash: &str,
        code_hash: &str,
        max: i64,
        unanswered: Option<&str>,
        now: i64,
    ) -> Result<Option<(String, String, Option<String>)>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE sms_codes SET used_at = $1 WHERE attempt_hash = $2 AND code_hash = $3 \
             AND person_id IS NOT NULL AND used_at IS NULL AND tries < $4 AND expires_at > $1 \
             AND NOT EXISTS (SELECT 1 FROM auth_requests WHERE id_hash = $5) \
             RETURNING person_id, purpose, session_sid",
        )
        .bind(now)
        .bind(attempt_hash)
        .bind(code_hash)
        .bind(max)
        .bind(unanswered)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("person_id")?,
                r.try_get("purpose")?,
                r.try_get("session_sid")?,
            ))
        })
        .transpose()
    }

    /// Uses a code once; true for the one caller that did.
    pub async fn sms_use(&self, attempt_hash: &str, max: i64, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE sms_codes SET used_at = $1 WHERE attempt_hash = $2 AND used_at IS NULL AND tries < $3 \
             AND expires_at > $1",
        )
        .bind(now)
        .bind(attempt_hash)
        .bind(max)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts a send to `phone_hash` from `address` unless a limit is reached. One transaction that
    /// first takes the write locks of the phone's and the address's lock rows (one statement, always in
    /// that order), so concurrent sends on any node are counted one after the other, then records the
    /// send only if the limits still allow it (one conditional insert). False when refused.
    pub async fn try_record_sms_send(
        &self,
        phone_hash: &str,
        address: &str,
        limits: SendLimits,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO login_throttle (key, attempts, last_at) VALUES ($1, 0, $3), ($2, 0, $3) \
             ON CONFLICT (key) DO UPDATE SET last_at = excluded.last_at",
        )
        .bind(format!("sms-lock:phone:{phone_hash}"))
        .bind(format!("sms-lock:addr:{address}"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "INSERT INTO sms_sends (phone_hash, address, at) SELECT $1, $2, $3 \
             WHERE (SELECT COUNT(*) FROM sms_sends WHERE phone_hash = $1 AND at >= $4) < $5 \
             AND (SELECT COUNT(*) FROM sms_sends WHERE address = $2 AND at >= $4) < $6 \
             AND COALESCE((SELECT MAX(at) FROM sms_sends WHERE phone_hash = $1), $7) <= $7",
        )
        .bind(phone_hash)
        .bind(address)
        .bind(now)
        .bind(now - 3600)
        .bind(limits.per_phone_hour)
        .bind(limits.per_address_hour)
        .bind(now - limits.cooldown)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn record_sms_send(
        &self,
        phone_hash: &str,
        address: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO sms_sends (phone_hash, address, at) VALUES ($1,$2,$3)")
            .bind(phone_hash)
            .bind(address)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (sends to this phone since `since`, latest send to it, sends from this address since `since`).
    pub async fn sms_send_counts(
        &self,
        phone_hash: &str,
        address: &str,
        since: i64,
    ) -> Result<(i64, Option<i64>, i64), sqlx::Error> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sms_sends WHERE phone_hash = $1 AND at >= $3) AS phone_count, \
             (SELECT MAX(at) FROM sms_sends WHERE phone_hash = $1) AS phone_last, \
             (SELECT COUNT(*) FROM sms_sends WHERE address = $2 AND at >= $3) AS address_count",
        )
        .bind(phone_hash)
        .bind(address)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((
            row.try_get("phone_count")?,
            row.try_get("phone_last")?,
            row.try_get("address_count")?,
        ))
    }

    /// Records a sign-in attempt under `id` (a record id the caller made from its own `now` and
    /// randomness, [`crate::ids::new_id`]).
    pub async fn record_login_event(
        &self,
        id: uuid::Uuid,
        person_id: &str,
        method: &str,
        address: &str,
        outcome: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO login_events (id, person_id, at, method, address, outcome) VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(id.to_string())
        .bind(person_id)
        .bind(now)
        .bind(method)
        .bind(address)
        .bind(outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn login_events(&self, person_id: &str, limit: i64) -> Result<Vec<LoginEvent>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, method, address, outcome FROM login_events WHERE person_id = $1 ORDER BY at DESC LIMIT $2",
        )
        .bind(person_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LoginEvent {
                    at: r.try_get("at")?,
                    method: r.try_get("method")?,
                    address: r.try_get("address")?,
                    outcome: r.try_get("outcome")?,
                })
            })
            .collect()
    }

    pub async fn insert_passkey(&self, p: &PasskeyRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO passkeys (id, person_id, name, credential_id, passkey, created_at) VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(&p.id)
        .bind(&p.person_id)
        .bind(&p.name)
        .bind(&p.credential_id)
        .bind(&p.passkey)
        .bind(p.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn passkeys_of(&self, person_id: &str) -> Result<Vec<PasskeyRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, person_id, name, credential_id, passkey, created_at, last_used_at FROM passkeys \
             WHERE person_id = $1 ORDER BY created_at",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(passkey_from_row).collect()
    }

    pub async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, person_id, name, credential_id, passkey, created_at, last_used_at FROM passkeys \
             WHERE credential_id = $1",
        )
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(passkey_from_row).transpose()
    }

    pub async fn update_passkey(&self, id: &str, passkey: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3")
            .bind(passkey)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_passkey(&self, id: &str, person_id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND person_id = $2")
            .bind(id)
            .bind(person_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_ceremony(
        &self,
        id_hash: &str,
        kind: &str,
        person_id: Option<&str>,
        state: &str,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id_hash, kind, person_id, state, expires_at) VALUES ($1,$2,$3,$4,$5)",
        )
        .bind(id_hash)
        .bind(kind)
        .bind(person_id)
        .bind(state)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a ceremony's state once, before it expires: (person id, state).
    pub async fn take_ceremony(
        &self,
        id_hash: &str,
        kind: &str,
        now: i64,
    ) -> Result<Option<(Option<String>, String)>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE webauthn_ceremonies SET used_at = $1 WHERE id_hash = $2 AND kind = $3 AND used_at IS NULL \
             AND expires_at > $1 RETURNING person_id, state",
        )
        .bind(now)
        .bind(id_hash)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("person_id")?, r.try_get("state")?)))
            .transpose()
    }
}

impl Db {
    /// Takes a login ceremony's state once, before it expires, and reads the passkey `credential_id`
    /// names in the same statement (its columns ride on the ceremony's `RETURNING`): `None` when the
    /// ceremony is unknown, used or expired; else its state and the key, if one has that id. The
    /// ceremony is used either way, as when the two were read one after the other.
    pub async fn take_login_ceremony(
        &self,
        id_hash: &str,
        credential_id: &str,
        now: i64,
    ) -> Result<Option<(String, Option<PasskeyRow>)>, sqlx::Error> {
        let key =
            |column: &str| format!("(SELECT {column} FROM passkeys WHERE credential_id = $3) AS k_{column}");
        let columns: Vec<String> = ["id", "person_id", "name", "passkey", "created_at", "last_used_at"]
            .into_iter()
            .map(key)
            .collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE webauthn_ceremonies SET used_at = $1 WHERE id_hash = $2 AND kind = 'login' \
             AND used_at IS NULL AND expires_at > $1 RETURNING state, {}",
            columns.join(", ")
        ));
        let row = sqlx::query(sql)
            .bind(now)
            .bind(id_hash)
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let state: String = r.try_get("state")?;
        let key = match r.try_get::<Option<String>, _>("k_id")? {
            None => None,
            Some(id) => Some(PasskeyRow {
                id,
                person_id: r.try_get("k_person_id")?,
                name: r.try_get("k_name")?,
                credential_id: credential_id.to_owned(),
                passkey: r.try_get("k_passkey")?,
                created_at: r.try_get("k_created_at")?,
                last_used_at: r.try_get("k_last_used_at")?,
            }),
        };
        Ok(Some((state, key)))
    }
}

fn passkey_from_row(r: &sqlx::any::AnyRow) -> Result<PasskeyRow, sqlx::Error> {
    Ok(PasskeyRow {
        id: r.try_get("id")?,
        person_id: r.try_get("person_id")?,
        name: r.try_get("name")?,
        credential_id: r.try_get("credential_id")?,
        passkey: r.try_get("passkey")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}
