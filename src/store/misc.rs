//! Replay caches and revocation lists.

use super::{Backend, Db, is_unique_violation};

type Statement<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl Db {
    pub async fn revoke_jti(&self, jti: &str, expires_at: i64) -> Result<(), sqlx::Error> {
        self.revoking(
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at),
        )
        .await?;
        Ok(())
    }

    /// Whether an access token is dead: its own `jti` revoked, or its family revoked. A token this node
    /// found live moments ago is answered from memory ([`super::client_cache`]): every revocation, on any
    /// node, makes every node forget what it knew.
    pub async fn access_token_revoked(
        &self,
        jti: &str,
        family_id: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let family_id = family_id.unwrap_or("");
        let key = format!("{jti}\n{family_id}");
        // Dated when the read starts: what it returns is at least that fresh.
        let now = self.clock.now();
        let generation = match self.live_tokens.get(&key, now) {
            Ok(()) => return Ok(false),
            Err(generation) => generation,
        };
        let revoked: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM revoked_tokens WHERE jti = $1) + \
             (SELECT COUNT(*) FROM families WHERE id = $2 AND revoked_at IS NOT NULL)",
        )
        .bind(jti)
        .bind(family_id)
        .fetch_one(&self.pool)
        .await?;
        if revoked == 0 {
            self.live_tokens.put(key, (), generation, now);
        }
        Ok(revoked > 0)
    }

    /// Runs a statement that revokes tokens or grants, with (PostgreSQL) the notice to the other nodes in
    /// its transaction; then this node forgets which tokens it knew to be live. Every statement that
    /// inserts into `revoked_tokens` or sets `families.revoked_at` goes through this, or through
    /// [`Db::announce_revocation`] and [`Db::forget_live_tokens`].
    pub(super) async fn revoking(&self, statement: Statement<'_>) -> Result<u64, sqlx::Error> {
        let done = if self.backend == Backend::Postgres {
            let mut tx = self.pool.begin().await?;
            let done = statement.execute(&mut *tx).await?;
            self.announce_revocation(&mut tx).await?;
            tx.commit().await?;
            done
        } else {
            statement.execute(&self.pool).await?
        };
        self.forget_live_tokens();
        Ok(done.rows_affected())
    }

    /// Inside a transaction that revokes: every other node forgets its live tokens when it commits.
    pub async fn announce_revocation(&self, tx: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(super::client_cache::REVOCATIONS)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// This node's revocation epoch: it moves whenever the node forgets its live tokens (a revocation
    /// here, a notice from another node, or the change listener lost), so that anything else kept
    /// per token (the verified access tokens) is dropped too.
    pub fn revocation_epoch(&self) -> u64 {
        self.live_tokens.generation()
    }

    /// This node forgets which access tokens it found live (after a revocation committed).
    pub fn forget_live_tokens(&self) {
        self.live_tokens.clear();
    }

    /// Records a client assertion's `jti`; false when it was seen before (a replay).
    pub async fn remember_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let result =
            sqlx::query("INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1,$2,$3)")
                .bind(client_id)
                .bind(jti)
                .bind(expires_at)
                .execute(&self.pool)
                .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes what has expired; safe to run on every node at once.
    pub async fn sweep(&self, now: i64, keep_failures_since: i64) -> Result<u64, sqlx::Error> {
        let mut n = 0;
        for sql in [
            "DELETE FROM codes WHERE expires_at < $1",
            "DELETE FROM par_requests WHERE expires_at < $1",
            "DELETE FROM auth_requests WHERE expires_at < $1",
            "DELETE FROM revoked_tokens WHERE expires_at < $1",
            "DELETE FROM client_assertion_jtis WHERE expires_at < $1",
            "DELETE FROM sms_codes WHERE expires_at < $1",
            "DELETE FROM webauthn_ceremonies WHERE expires_at < $1",
            "DELETE FROM sms_outbox WHERE expires_at < $1",
            "DELETE FROM device_grants WHERE expires_at < $1",
            "DELETE FROM scan_requests WHERE expires_at < $1",
        ] {
            n += sqlx::query(sql)
                .bind(now - 60)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        // Sending counters matter for an hour.
        n += sqlx::query("DELETE FROM sms_sends WHERE at < $1")
            .bind(now - 3600)
            .execute(&self.pool)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(keep_failures_since)
            .execute(&self.pool)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM login_throttle WHERE last_at < $1")
            .bind(keep_failures_since)
            .execute(&self.pool)
            .await?
            .rows_affected();
        n += self.sweep_upstream_state(now).await?;
        Ok(n)
    }
}
