//! SSO sessions: the cookie holds an opaque id, the database its hash and everything else.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use crate::amr::Amr;
use crate::scope::ScopeSet;

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: String,
    /// Public session id: the `sid` claim, never the cookie value.
    pub sid: String,
    pub person_id: String,
    pub auth_time: i64,
    /// How the session's sign-in was made (stored space-separated).
    pub amr: Amr,
    pub acr: i64,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
}

fn from_row(row: &AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id_hash: row.try_get("id_hash")?,
        sid: row.try_get("sid")?,
        person_id: row.try_get("person_id")?,
        auth_time: row.try_get("auth_time")?,
        amr: Amr::parse(&row.try_get::<String, _>("amr")?),
        acr: row.try_get("acr")?,
        created_at: row.try_get("created_at")?,
        last_seen: row.try_get("last_seen")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// The `consented` column a statement read with the session: the person's consent to the request's app
/// (stored space-separated), if any.
fn consented(row: &AnyRow) -> Result<Option<ScopeSet>, sqlx::Error> {
    let stored: Option<String> = row.try_get("consented")?;
    Ok(stored.as_deref().map(ScopeSet::parse))
}

impl Db {
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, sid, person_id, auth_time, amr, acr, created_at, last_seen, expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        )
        .bind(&s.id_hash)
        .bind(&s.sid)
        .bind(&s.person_id)
        .bind(s.auth_time)
        .bind(s.amr.to_string())
        .bind(s.acr)
        .bind(s.created_at)
        .bind(s.last_seen)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts a session for a person who is active, checked by the same statement; `None` (nothing
    /// written) when the person is locked, disabled or gone, or when `request` names a pending request
    /// whose answered marker exists (review M1: no session is made for an answered request; the caller
    /// reads the marker to tell which). Written: what the person consented to for the request's app,
    /// read by the same statement (what the request's next step would read with the session).
    pub async fn insert_session_if_active(
        &self,
        s: &SessionRow,
        request: Option<ForRequest<'_>>,
    ) -> Result<Option<Option<ScopeSet>>, sqlx::Error> {
        let row = sqlx::query(
            "INSERT INTO sessions (id_hash, sid, person_id, auth_time, amr, acr, created_at, last_seen, expires_at) \
             SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9 FROM persons WHERE id = $3 AND status = 'active' \
             AND NOT EXISTS (SELECT 1 FROM auth_requests WHERE id_hash = $10) \
             RETURNING (SELECT scopes FROM consents WHERE person_id = $3 AND client_id = $11) AS consented",
        )
        .bind(&s.id_hash)
        .bind(&s.sid)
        .bind(&s.person_id)
        .bind(s.auth_time)
        .bind(s.amr.to_string())
        .bind(s.acr)
        .bind(s.created_at)
        .bind(s.last_seen)
        .bind(s.expires_at)
        .bind(request.map(|r| r.id_hash))
        .bind(request.map(|r| r.client_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(consented).transpose()
    }

    /// A live session, its person, and what the person consented to for `client_id`, in one read (the
    /// authorization request's whole view of the browser's sign-in).
    pub async fn live_session_for_client(
        &self,
        id_hash: &str,
        client_id: &str,
        now: i64,
        idle_since: i64,
    ) -> Result<Option<(SessionRow, super::persons::PersonRow, Option<ScopeSet>)>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT s.id_hash, s.sid, s.person_id, s.auth_time, s.amr, s.acr, s.created_at, s.last_seen, \
             s.expires_at, c.scopes AS consented, {} FROM sessions s JOIN persons p ON p.id = s.person_id \
             LEFT JOIN consents c ON c.person_id = s.person_id AND c.client_id = $4 \
             WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND s.last_seen >= $3",
            super::persons::JOINED
        ));
        let row = sqlx::query(sql)
            .bind(id_hash)
            .bind(now)
            .bind(idle_since)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| Ok((from_row(r)?, super::persons::from_row(r)?, consented(r)?)))
            .transpose()
    }

    /// A live session (not ended, not past its absolute expiry, seen within `idle_since`) and its person,
    /// in one read.
    pub async fn live_session_with_person(
        &self,
        id_hash: &str,
        now: i64,
        idle_since: i64,
    ) -> Result<Option<(SessionRow, super::persons::PersonRow)>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT s.id_hash, s.sid, s.person_id, s.auth_time, s.amr, s.acr, s.created_at, s.last_seen, \
             s.expires_at, {} FROM sessions s JOIN persons p ON p.id = s.person_id \
             WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND s.last_seen >= $3",
            super::persons::JOINED
        ));
        let row = sqlx::query(sql)
            .bind(id_hash)
            .bind(now)
            .bind(idle_since)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| Ok((from_row(r)?, super::persons::from_row(r)?)))
            .transpose()
    }

    pub async fn session_by_sid(&self, sid: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id_hash, sid, person_id, auth_time, amr, acr, created_at, last_seen, expires_at FROM sessions \
             WHERE sid = $1 AND ended_at IS NULL",
        )
        .bind(sid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Whether the session `sid` is live: not ended, not past its absolute expiry, seen since `idle_since`.
    pub async fn session_is_live(&self, sid: &str, now: i64, idle_since: i64) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sessions WHERE sid = $1 AND ended_at IS NULL AND expires_at > $2 AND last_seen >= $3",
        )
        .bind(sid)
        .bind(now)
        .bind(idle_since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id_hash = $2 AND last_seen < $1")
            .bind(now)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session; true when this call ended it.
    pub async fn end_session(&self, sid: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE sessions SET ended_at = $1 WHERE sid = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(sid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The apps a session signed in to, with the person each grant was for: every grant family the
    /// session made (one per app), and the rows an earlier version kept apart in `session_clients`.
    pub async fn session_clients(&self, sid: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT client_id, person_id FROM families WHERE session_sid = $1 AND person_id IS NOT NULL \
             UNION SELECT client_id, person_id FROM session_clients WHERE session_sid = $1 \
             ORDER BY client_id",
        )
        .bind(sid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("client_id")?, r.try_get("person_id")?)))
            .collect()
    }

    /// Whom the grants a session made to `client_id` spoke about: the organisation's id for a grant
    /// made acting for it, else the person's (one entry each, revoked grants included).
    pub async fn session_grant_subjects(
        &self,
        sid: &str,
        client_id: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT DISTINCT COALESCE(r.org_id, f.person_id) AS local_id FROM families f \
             LEFT JOIN representations r ON r.id = f.acting_rep_id \
             WHERE f.session_sid = $1 AND f.client_id = $2 AND f.person_id IS NOT NULL \
             ORDER BY local_id",
        )
        .bind(sid)
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("local_id")).collect()
    }
}

/// What a renewal writes into a session: its methods, level and sign-in time.
#[derive(Debug, Clone, Copy)]
pub struct Renewed<'a> {
    pub amr: &'a Amr,
    pub acr: i64,
    pub auth_time: i64,
}

/// The pending request a session is written for: the hash of its id (the key of its answered marker)
/// and its app (whose consent the write reads back).
#[derive(Debug, Clone, Copy)]
pub struct ForRequest<'a> {
    pub id_hash: &'a str,
    pub client_id: &'a str,
}

impl Db {
    /// Raises or renews a session: a new cookie id (no fixation), the given methods and level and the
    /// given `auth_time` (now after a further factor here; the original sign-in's time for one carried
    /// from an upstream or a phone); `sid` stays, so apps keep their session. `None` if it ended
    /// meanwhile, or when `request` names a pending request whose answered marker exists (review M1).
    /// Renewed: what the person consented to for the request's app, read by the same statement.
    pub async fn upgrade_session(
        &self,
        old_id_hash: &str,
        new_id_hash: &str,
        renewed: Renewed<'_>,
        now: i64,
        request: Option<ForRequest<'_>>,
    ) -> Result<Option<Option<ScopeSet>>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE sessions SET id_hash = $1, amr = $2, acr = $3, auth_time = $4, last_seen = $5 \
             WHERE id_hash = $6 AND ended_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM auth_requests WHERE id_hash = $7) \
             RETURNING (SELECT scopes FROM consents WHERE consents.person_id = sessions.person_id \
             AND consents.client_id = $8) AS consented",
        )
        .bind(new_id_hash)
        .bind(renewed.amr.to_string())
        .bind(renewed.acr)
        .bind(renewed.auth_time)
        .bind(now)
        .bind(old_id_hash)
        .bind(request.map(|r| r.id_hash))
        .bind(request.map(|r| r.client_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(consented).transpose()
    }

    /// A person's live sessions, newest first.
    pub async fn sessions_of(&self, person_id: &str, now: i64) -> Result<Vec<SessionRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id_hash, sid, person_id, auth_time, amr, acr, created_at, last_seen, expires_at FROM sessions \
             WHERE person_id = $1 AND ended_at IS NULL AND expires_at > $2 ORDER BY created_at DESC",
        )
        .bind(person_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}
