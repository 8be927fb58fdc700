//! Dynamic client registration: initial access tokens (issued by admins) and the registration record of
//! each dynamically registered client. Tokens are kept only as SHA-256 hashes.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use super::clients::Client;

/// An initial access token (RFC 7591 §1.2), without its secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistrationToken {
    pub id: String,
    #[serde(skip)]
    pub token_hash: String,
    /// The department the clients registered with it belong to.
    pub department: String,
    pub note: String,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

/// A dynamically registered client's registration: its management token hash and metadata.
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    pub client_id: String,
    pub access_token_hash: String,
    /// The registered metadata (JSON object), as returned to the client.
    pub metadata: String,
    pub initial_token_id: String,
    pub issued_at: i64,
}

fn token_from_row(r: &AnyRow) -> Result<RegistrationToken, sqlx::Error> {
    Ok(RegistrationToken {
        id: r.try_get("id")?,
        token_hash: r.try_get("token_hash")?,
        department: r.try_get("department")?,
        note: r.try_get("note")?,
        max_uses: r.try_get("max_uses")?,
        uses: r.try_get("uses")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, token_hash, department, note, max_uses, uses, expires_at, revoked_at, created_by, created_at";

impl Db {
    pub async fn insert_registration_token(&self, t: &RegistrationToken) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO registration_tokens (id, token_hash, department, note, max_uses, uses, expires_at, \
             revoked_at, created_by, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
        )
        .bind(&t.id)
        .bind(&t.token_hash)
        .bind(&t.department)
        .bind(&t.note)
        .bind(t.max_uses)
        .bind(t.uses)
        .bind(t.expires_at)
        .bind(t.revoked_at)
        .bind(&t.created_by)
        .bind(t.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every initial access token, newest first.
    pub async fn registration_tokens(&self) -> Result<Vec<RegistrationToken>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM registration_tokens ORDER BY created_at DESC, id DESC"
        ));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn registration_token(&self, id: &str) -> Result<Option<RegistrationToken>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM registration_tokens WHERE id = $1"
        ));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub async fn registration_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<RegistrationToken>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM registration_tokens WHERE token_hash = $1"
        ));
        let row = sqlx::query(sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Counts one use, only while the token is unrevoked, unexpired and not used up: of concurrent
    /// registrations racing for the last use exactly one wins.
    pub async fn use_registration_token(&self, id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE registration_tokens SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL \
             AND uses < max_uses AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn revoke_registration_token(&self, id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE registration_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Db {
    pub async fn insert_client_registration(
        &self,
        r: &ClientRegistration,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO client_registrations (client_id, access_token_hash, metadata, initial_token_id, \
             issued_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(&r.client_id)
        .bind(&r.access_token_hash)
        .bind(&r.metadata)
        .bind(&r.initial_token_id)
        .bind(r.issued_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn client_registration(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRegistration>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT client_id, access_token_hash, metadata, initial_token_id, issued_at \
             FROM client_registrations WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ClientRegistration {
                client_id: r.try_get("client_id")?,
                access_token_hash: r.try_get("access_token_hash")?,
                metadata: r.try_get("metadata")?,
                initial_token_id: r.try_get("initial_token_id")?,
                issued_at: r.try_get("issued_at")?,
            })
        })
        .transpose()
    }

    /// Replaces the registration access token, only if `old_hash` is still the current one: of two
    /// calls with the same token one wins.
    pub async fn rotate_registration_access_token(
        &self,
        client_id: &str,
        old_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE client_registrations SET access_token_hash = $1, updated_at = $2 \
             WHERE client_id = $3 AND access_token_hash = $4",
        )
        .bind(new_hash)
        .bind(now)
        .bind(client_id)
        .bind(old_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// RFC 7592 §2.2: the client's settings and its registered metadata replaced together, and the
    /// registration access token rotated, only if `old_hash` is still the current token.
    pub async fn replace_registered_client(
        &self,
        c: &Client,
        metadata: &str,
        old_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE client_registrations SET metadata = $1, access_token_hash = $2, updated_at = $3 \
             WHERE client_id = $4 AND access_token_hash = $5",
        )
        .bind(metadata)
        .bind(new_hash)
        .bind(now)
        .bind(&c.id)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE clients SET name = $1, secret_hash = $2, redirect_uris = $3, post_logout_redirect_uris = $4, \
             scopes = $5, grant_types = $6, auth_method = $7, jwks = $8, id_token_alg = $9, \
             backchannel_logout_uri = $10, jwks_uri = $11, version = version + 1 WHERE id = $12",
        )
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(json(&c.redirect_uris))
        .bind(json(&c.post_logout_redirect_uris))
        .bind(json(&c.scopes))
        .bind(json(&c.grant_types))
        .bind(c.auth_method.as_str())
        .bind(&c.jwks)
        .bind(c.id_token_alg.as_str())
        .bind(&c.backchannel_logout_uri)
        .bind(&c.jwks_uri)
        .bind(&c.id)
        .execute(&mut *tx)
        .await?;
        self.announce_client_change(&mut tx, &c.id).await?;
        tx.commit().await?;
        self.forget_client(&c.id);
        Ok(true)
    }

    /// RFC 7592 §2.3: the client is disabled, every grant it holds revoked (its access and refresh
    /// tokens stop working), and its registration removed (the management token with it).
    pub async fn deregister_client(&self, client_id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM client_registrations WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE clients SET disabled = 1, version = version + 1 WHERE id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE families SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        self.announce_client_change(&mut tx, client_id).await?;
        self.announce_revocation(&mut tx).await?;
        tx.commit().await?;
        self.forget_client(client_id);
        self.forget_live_tokens();
        Ok(done.rows_affected() == 1)
    }
}
