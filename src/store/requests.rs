//! Answered markers of pending authorization requests (the requests themselves travel sealed with the
//! browser, `services::authn::pending`), pushed requests (RFC 9126), and consents.

use super::Db;
use crate::scope::ScopeSet;

impl Db {
    /// Marks a pending request (carried sealed by its browser, `services::authn::pending`) answered:
    /// one statement that only the first caller gets through (the row's key is the request's id hash).
    /// The row lives until the request would have expired anyway.
    pub async fn answer_auth_request(
        &self,
        id_hash: &str,
        client_id: &str,
        browser_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO auth_requests (id_hash, client_id, params, browser_hash, created_at, expires_at, done_at) \
             VALUES ($1,$2,'',$3,$4,$5,$4) ON CONFLICT (id_hash) DO NOTHING",
        )
        .bind(id_hash)
        .bind(client_id)
        .bind(browser_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether a pending request was answered already (one read by its key).
    pub async fn auth_request_answered(&self, id_hash: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM auth_requests WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    pub async fn insert_par(
        &self,
        uri_hash: &str,
        client_id: &str,
        params: &str,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO par_requests (uri_hash, client_id, params, expires_at) VALUES ($1,$2,$3,$4)",
        )
        .bind(uri_hash)
        .bind(client_id)
        .bind(params)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Consumes a pushed request: once, before expiry, by the client that pushed it.
    pub async fn take_par(
        &self,
        uri_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE par_requests SET used_at = $1 WHERE uri_hash = $2 AND client_id = $3 AND used_at IS NULL \
             AND expires_at > $1 RETURNING params",
        )
        .bind(now)
        .bind(uri_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// What a person consented to for an app (stored space-separated).
    pub async fn consent(&self, person_id: &str, client_id: &str) -> Result<Option<ScopeSet>, sqlx::Error> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT scopes FROM consents WHERE person_id = $1 AND client_id = $2")
                .bind(person_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(stored.as_deref().map(ScopeSet::parse))
    }

    /// Saves (or replaces) a person's consent to an app, given for the pending request whose id hashes
    /// to `unanswered`, only while that request's answered marker does not exist: checked by the same
    /// statement, so a second tab answering the request after this step read the marker leaves no
    /// consent behind (as the session insert does). False: nothing saved.
    pub async fn save_consent(
        &self,
        person_id: &str,
        client_id: &str,
        scopes: &ScopeSet,
        unanswered: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        // SQLite needs the WHERE for an upsert from a SELECT (its `ON` would otherwise parse as a join's).
        let done = sqlx::query(
            "INSERT INTO consents (person_id, client_id, scopes, created_at) SELECT $1,$2,$3,$4 \
             WHERE NOT EXISTS (SELECT 1 FROM auth_requests WHERE id_hash = $5) \
             ON CONFLICT (person_id, client_id) DO UPDATE SET scopes = excluded.scopes, created_at = excluded.created_at",
        )
        .bind(person_id)
        .bind(client_id)
        .bind(scopes.to_string())
        .bind(now)
        .bind(unanswered)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Db {
    /// The apps a person consented to: (client id, client name, scopes).
    pub async fn consents_of(&self, person_id: &str) -> Result<Vec<(String, String, ScopeSet)>, sqlx::Error> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT c.client_id, k.name, c.scopes FROM consents c JOIN clients k ON k.id = c.client_id \
             WHERE c.person_id = $1 ORDER BY k.name",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let scopes: String = r.try_get("scopes")?;
                Ok((
                    r.try_get("client_id")?,
                    r.try_get("name")?,
                    ScopeSet::parse(&scopes),
                ))
            })
            .collect()
    }

    /// Withdraws a consent and revokes every grant the person gave that app (refresh tokens included).
    pub async fn revoke_app(&self, person_id: &str, client_id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let gone = sqlx::query("DELETE FROM consents WHERE person_id = $1 AND client_id = $2")
            .bind(person_id)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        self.revoking(
            sqlx::query(
                "UPDATE families SET revoked_at = $1 WHERE person_id = $2 AND client_id = $3 \
                 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(person_id)
            .bind(client_id),
        )
        .await?;
        Ok(gone.rows_affected() == 1)
    }
}
