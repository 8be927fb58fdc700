//! The SMS outbox: messages waiting to be sent, sealed, each claimed by one node at a time with a lease
//! and deleted once delivered (or given up, or expired).

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    /// The sealed message; `None` for a number that gets no message (the row only evens out the cost).
    pub sealed: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub expires_at: i64,
}

impl Db {
    pub async fn enqueue_sms(
        &self,
        id: &str,
        sealed: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sms_outbox (id, sealed, attempts, next_attempt_at, locked_until, expires_at) \
             VALUES ($1, $2, 0, $3, 0, $4)",
        )
        .bind(id)
        .bind(sealed)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Queues a message already claimed by the node that sends it at once, until `locked_until` (its
    /// first attempt counted): no other node's sweep takes it before then, and any node's sweep does
    /// after, should that send fail or the node die.
    pub async fn enqueue_sms_claimed(
        &self,
        id: &str,
        sealed: Option<&str>,
        now: i64,
        locked_until: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sms_outbox (id, sealed, attempts, next_attempt_at, locked_until, expires_at) \
             VALUES ($1, $2, 1, $3, $4, $5)",
        )
        .bind(id)
        .bind(sealed)
        .bind(now)
        .bind(locked_until)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims due messages for `lease` seconds in one statement: a row another node holds (or took
    /// meanwhile: PostgreSQL re-checks the condition on the locked row) is not returned.
    pub async fn claim_sms(&self, now: i64, lease: i64) -> Result<Vec<Outgoing>, sqlx::Error> {
        let rows = sqlx::query(
            "UPDATE sms_outbox SET locked_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM sms_outbox WHERE next_attempt_at <= $2 AND locked_until <= $2 \
             ORDER BY next_attempt_at LIMIT 16) AND next_attempt_at <= $2 AND locked_until <= $2 \
             RETURNING id, sealed, attempts, expires_at",
        )
        .bind(now + lease)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Outgoing {
                    id: r.try_get("id")?,
                    sealed: r.try_get("sealed")?,
                    attempts: r.try_get("attempts")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Removes messages: delivered, given up, or nothing to send (one statement per 256).
    pub async fn sms_done(&self, ids: &[&str]) -> Result<(), sqlx::Error> {
        for chunk in ids.chunks(256) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = sqlx::AssertSqlSafe(format!(
                "DELETE FROM sms_outbox WHERE id IN ({})",
                placeholders.join(",")
            ));
            let mut delete = sqlx::query(sql);
            for id in chunk {
                delete = delete.bind(*id);
            }
            delete.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// A failed attempt: tried again at `next`.
    pub async fn sms_retry(&self, id: &str, next: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sms_outbox SET next_attempt_at = $1, locked_until = 0 WHERE id = $2")
            .bind(next)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Messages not yet delivered (for tests and operators).
    pub async fn sms_outbox_len(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM sms_outbox")
            .fetch_one(&self.pool)
            .await
    }
}
