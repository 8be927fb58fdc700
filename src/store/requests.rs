//! Pending authorization requests (while the person logs in or consents) and pushed requests (RFC 9126).

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub client_id: String,
    pub login_sid: Option<String>,
    pub params: String,
    pub created_at: i64,
    /// Hash of the binding cookie of the browser that started the request (`None` for none).
    pub browser_hash: Option<String>,
}

impl Db {
    pub async fn insert_auth_request(
        &self,
        id_hash: &str,
        client_id: &str,
        params: &str,
        browser_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO auth_requests (id_hash, client_id, params, browser_hash, created_at, expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(id_hash)
        .bind(client_id)
        .bind(params)
        .bind(browser_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn auth_request(&self, id_hash: &str, now: i64) -> Result<Option<PendingRequest>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT client_id, params, created_at, login_sid, browser_hash FROM auth_requests \
             WHERE id_hash = $1 AND expires_at > $2 AND done_at IS NULL",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PendingRequest {
                client_id: r.try_get("client_id")?,
                login_sid: r.try_get("login_sid")?,
                params: r.try_get("params")?,
                created_at: r.try_get("created_at")?,
                browser_hash: r.try_get("browser_hash")?,
            })
        })
        .transpose()
    }

    /// Replaces a pending request's parameters (after consent or the acting-for choice), only from the
    /// browser that started it; true when it was.
    pub async fn update_auth_request(
        &self,
        id_hash: &str,
        browser_hash: &str,
        params: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE auth_requests SET params = $1 WHERE id_hash = $2 AND browser_hash = $3 AND done_at IS NULL",
        )
        .bind(params)
        .bind(id_hash)
        .bind(browser_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the person logged in (session `sid`) for this pending request, in the browser that
    /// started it.
    pub async fn set_login_sid(
        &self,
        id_hash: &str,
        browser_hash: &str,
        sid: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE auth_requests SET login_sid = $1 WHERE id_hash = $2 AND browser_hash = $3 AND done_at IS NULL",
        )
        .bind(sid)
        .bind(id_hash)
        .bind(browser_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a pending request answered, in the browser that started it; true for the one caller that
    /// did it.
    pub async fn finish_auth_request(
        &self,
        id_hash: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE auth_requests SET done_at = $1 WHERE id_hash = $2 AND browser_hash = $3 AND done_at IS NULL",
        )
        .bind(now)
        .bind(id_hash)
        .bind(browser_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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

    pub async fn consent(&self, person_id: &str, client_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT scopes FROM consents WHERE person_id = $1 AND client_id = $2")
            .bind(person_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn save_consent(
        &self,
        person_id: &str,
        client_id: &str,
        scopes: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO consents (person_id, client_id, scopes, created_at) VALUES ($1,$2,$3,$4) \
             ON CONFLICT (person_id, client_id) DO UPDATE SET scopes = excluded.scopes, created_at = excluded.created_at",
        )
        .bind(person_id)
        .bind(client_id)
        .bind(scopes)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Db {
    /// The apps a person consented to: (client id, client name, scopes).
    pub async fn consents_of(&self, person_id: &str) -> Result<Vec<(String, String, String)>, sqlx::Error> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT c.client_id, k.name, c.scopes FROM consents c JOIN clients k ON k.id = c.client_id \
             WHERE c.person_id = $1 ORDER BY k.name",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("client_id")?, r.try_get("name")?, r.try_get("scopes")?)))
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
