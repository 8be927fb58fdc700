//! The back-channel logout outbox: a row per logout token to deliver, retried with back-off.

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub client_id: String,
    /// The endpoint when the logout happened (the client's current one is used when sending).
    pub uri: String,
    /// What the logout token says, signed when it is sent: the app's subject and the session id.
    pub subject: String,
    pub sid: String,
    pub attempts: i64,
}

/// A claimed delivery: what to say, or (queued by an older version) the token signed back then.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub legacy_token: Option<String>,
}

impl Db {
    pub async fn enqueue_logout(&self, d: &Delivery, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO logout_deliveries (id, client_id, uri, token, subject, sid, attempts, next_attempt_at) \
             VALUES ($1,$2,$3,'',$4,$5,0,$6)",
        )
        .bind(&d.id)
        .bind(&d.client_id)
        .bind(&d.uri)
        .bind(&d.subject)
        .bind(&d.sid)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Up to `limit` due deliveries, each claimed for `lease` seconds so only one node sends it, and at
    /// most `per_client` in flight (claimed and not yet settled, on any node) for any one app, so an app
    /// that hangs holds back only its own deliveries.
    pub async fn claim_logout_deliveries(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
        per_client: i64,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id FROM (SELECT d.id, d.next_attempt_at, \
             ROW_NUMBER() OVER (PARTITION BY d.client_id ORDER BY d.next_attempt_at, d.id) AS n, \
             (SELECT COUNT(*) FROM logout_deliveries f WHERE f.client_id = d.client_id \
              AND f.delivered_at IS NULL AND f.failed_at IS NULL AND f.locked_until > $1) AS in_flight \
             FROM logout_deliveries d WHERE d.delivered_at IS NULL AND d.failed_at IS NULL \
             AND d.next_attempt_at <= $1 AND d.locked_until <= $1) due \
             WHERE n + in_flight <= $2 ORDER BY next_attempt_at, id LIMIT $3",
        )
        .bind(now)
        .bind(per_client)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let got = sqlx::query(
                "UPDATE logout_deliveries SET locked_until = $1 WHERE id = $2 AND locked_until <= $3 \
                 AND delivered_at IS NULL AND failed_at IS NULL \
                 RETURNING id, client_id, uri, token, subject, sid, attempts",
            )
            .bind(now + lease)
            .bind(&id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = got {
                let subject: Option<String> = r.try_get("subject")?;
                let sid: Option<String> = r.try_get("sid")?;
                let token: String = r.try_get("token")?;
                claimed.push(Claimed {
                    legacy_token: subject.is_none().then_some(token),
                    delivery: Delivery {
                        id: r.try_get("id")?,
                        client_id: r.try_get("client_id")?,
                        uri: r.try_get("uri")?,
                        subject: subject.unwrap_or_default(),
                        sid: sid.unwrap_or_default(),
                        attempts: r.try_get("attempts")?,
                    },
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
