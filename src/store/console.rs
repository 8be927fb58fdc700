//! The admin console's own state: sign-ins under way and console sessions. Rows are keyed by the hash of
//! the cookie value, so a database reader cannot replay a browser's cookie.

use sqlx::Row;

use super::Db;

/// A console sign-in between the redirect to `/authorize` and the callback.
#[derive(Debug, Clone)]
pub struct ConsoleLogin {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// The console page to show afterwards (a path on our origin).
    pub return_to: String,
}

/// A signed-in console: who, and the yunid session (`sid`) it hangs on.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub person_id: String,
    pub sid: String,
    pub acr: i64,
    /// The ID token the console got (the `id_token_hint` of its RP-initiated logout).
    pub id_token: String,
    pub last_seen: i64,
    pub expires_at: i64,
}

impl Db {
    /// Records a sign-in under way (and forgets expired ones).
    pub async fn insert_console_login(
        &self,
        id_hash: &str,
        login: &ConsoleLogin,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_logins WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_logins (id_hash, state, nonce, verifier, return_to, created_at, expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(id_hash)
        .bind(&login.state)
        .bind(&login.nonce)
        .bind(&login.verifier)
        .bind(&login.return_to)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a sign-in under way: it is used once, whatever the outcome.
    pub async fn take_console_login(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleLogin>, sqlx::Error> {
        let row = sqlx::query(
            "DELETE FROM console_logins WHERE id_hash = $1 AND expires_at >= $2 \
             RETURNING state, nonce, verifier, return_to",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ConsoleLogin {
                state: r.try_get("state")?,
                nonce: r.try_get("nonce")?,
                verifier: r.try_get("verifier")?,
                return_to: r.try_get("return_to")?,
            })
        })
        .transpose()
    }

    pub async fn insert_console_session(
        &self,
        id_hash: &str,
        s: &ConsoleSession,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, person_id, sid, acr, id_token, created_at, last_seen, expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$6,$7)",
        )
        .bind(id_hash)
        .bind(&s.person_id)
        .bind(&s.sid)
        .bind(s.acr)
        .bind(&s.id_token)
        .bind(now)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A console session that is neither past its absolute expiry nor idle since before `idle_since`.
    pub async fn console_session(
        &self,
        id_hash: &str,
        now: i64,
        idle_since: i64,
    ) -> Result<Option<ConsoleSession>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT person_id, sid, acr, id_token, last_seen, expires_at FROM console_sessions \
             WHERE id_hash = $1 AND expires_at > $2 AND last_seen >= $3",
        )
        .bind(id_hash)
        .bind(now)
        .bind(idle_since)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ConsoleSession {
                person_id: r.try_get("person_id")?,
                sid: r.try_get("sid")?,
                acr: r.try_get("acr")?,
                id_token: r.try_get("id_token")?,
                last_seen: r.try_get("last_seen")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn touch_console_session(&self, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_console_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every console session hanging on a yunid session.
    pub async fn delete_console_sessions_of_sid(&self, sid: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE sid = $1")
            .bind(sid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Db {
    /// Brings the console's own client row in line with this node's configuration (issuer, secret),
    /// keeping its id and everything that hangs off it.
    pub async fn align_internal_client(&self, c: &super::clients::Client) -> Result<(), sqlx::Error> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let update = sqlx::query(
            "UPDATE clients SET redirect_uris = $1, post_logout_redirect_uris = $2, secret_hash = $3, \
             scopes = $4, grant_types = $5, sector = $6, min_acr = $7, disabled = 0, \
             version = version + 1 WHERE id = $8",
        )
        .bind(json(&c.redirect_uris))
        .bind(json(&c.post_logout_redirect_uris))
        .bind(&c.secret_hash)
        .bind(json(&c.scopes))
        .bind(json(&c.grant_types))
        .bind(&c.sector)
        .bind(c.min_acr)
        .bind(&c.id);
        self.change_client(&c.id, update).await?;
        Ok(())
    }
}
