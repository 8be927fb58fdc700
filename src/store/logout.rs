//! The back-channel logout outbox: a row per logout token to deliver, retried with back-off.

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub client_id: String,
    pub uri: String,
    pub token: String,
    pub attempts: i64,
}

impl Db {
    pub async fn enqueue_logout(&self, d: &Delivery, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO logout_deliveries (id, client_id, uri, token, attempts, next_attempt_at) \
             VALUES ($1,$2,$3,$4,0,$5)",
        )
        .bind(&d.id)
        .bind(&d.client_id)
        .bind(&d.uri)
        .bind(&d.token)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Due deliveries, each claimed for `lease` seconds so only one node sends it.
    pub async fn claim_logout_deliveries(&self, now: i64, lease: i64) -> Result<Vec<Delivery>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id FROM logout_deliveries WHERE delivered_at IS NULL AND failed_at IS NULL \
             AND next_attempt_at <= $1 AND locked_until <= $1 ORDER BY next_attempt_at LIMIT 32",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let got = sqlx::query(
                "UPDATE logout_deliveries SET locked_until = $1 WHERE id = $2 AND locked_until <= $3 \
                 AND delivered_at IS NULL RETURNING id, client_id, uri, token, attempts",
            )
            .bind(now + lease)
            .bind(&id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = got {
                claimed.push(Delivery {
                    id: r.try_get("id")?,
                    client_id: r.try_get("client_id")?,
                    uri: r.try_get("uri")?,
                    token: r.try_get("token")?,
                    attempts: r.try_get("attempts")?,
                });
            }
        }
        Ok(claimed)
    }

    pub async fn logout_delivered(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE logout_deliveries SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A failed attempt: retried at `next`, or given up for good when `next` is `None`.
    pub async fn logout_failed(
        &self,
        id: &str,
        now: i64,
        next: Option<i64>,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $1, failed_at = $2, \
             last_error = $3, locked_until = 0 WHERE id = $4",
        )
        .bind(next.unwrap_or(now))
        .bind(if next.is_none() { Some(now) } else { None })
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
