//! The audit trail: append-only events, each carrying the hash of its content and of the previous event,
//! so an edited or deleted row breaks the chain. Appends are serialised through the `audit_head` row.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::Db;
use crate::crypto;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub client_id: String,
    pub address: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What a caller records; sequence and hashes are the store's.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub address: &'a str,
    pub outcome: &'a str,
    pub detail: String,
}

/// SHA-256 over the previous hash and every field, length-prefixed so fields cannot run into each other.
pub fn chain_hash(prev: &str, seq: i64, at: i64, fields: [&str; 7]) -> String {
    let mut buf = Vec::new();
    for part in [prev, &seq.to_string(), &at.to_string()]
        .into_iter()
        .chain(fields)
    {
        buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    crypto::b64url(&crypto::sha256(&buf))
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<AuditEvent, sqlx::Error> {
    Ok(AuditEvent {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        subject: r.try_get("subject")?,
        client_id: r.try_get("client_id")?,
        address: r.try_get("address")?,
        outcome: r.try_get("outcome")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

const COLUMNS: &str = "seq, at, actor, action, subject, client_id, address, outcome, detail, prev_hash, hash";

impl Db {
    pub async fn append_audit(&self, e: &NewEvent<'_>, now: i64) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Taking the head row's write lock orders appends across nodes.
        let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
        let seq: i64 = head.try_get("seq")?;
        let prev: String = head.try_get("hash")?;
        let hash = chain_hash(
            &prev,
            seq,
            now,
            [
                e.actor,
                e.action,
                e.subject,
                e.client_id,
                e.address,
                e.outcome,
                &e.detail,
            ],
        );
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor, action, subject, client_id, address, outcome, detail, \
             prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
        )
        .bind(seq)
        .bind(now)
        .bind(e.actor)
        .bind(e.action)
        .bind(e.subject)
        .bind(e.client_id)
        .bind(e.address)
        .bind(e.outcome)
        .bind(&e.detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Events in order, optionally filtered by actor, action or subject, after `since` (seconds).
    pub async fn audit_events(
        &self,
        filter_field: Option<(&str, &str)>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        // The column name comes from this fixed list, never from the caller's text.
        let column = match filter_field {
            Some(("actor", _)) => Some("actor"),
            Some(("action", _)) => Some("action"),
            Some(("subject", _)) => Some("subject"),
            Some(("client_id", _)) => Some("client_id"),
            _ => None,
        };
        let rows = match (column, filter_field) {
            (Some(col), Some((_, value))) => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE at >= $1 AND {col} = $3 ORDER BY seq LIMIT $2"
                ));
                sqlx::query(sql)
                    .bind(since)
                    .bind(limit)
                    .bind(value)
                    .fetch_all(&self.pool)
                    .await?
            }
            _ => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE at >= $1 ORDER BY seq LIMIT $2"
                ));
                sqlx::query(sql)
                    .bind(since)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// (anchor seq, anchor hash, head seq, head hash).
    pub async fn audit_head(&self) -> Result<(i64, String, i64, String), sqlx::Error> {
        let r = sqlx::query("SELECT seq, hash, anchor_seq, anchor_hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((
            r.try_get("anchor_seq")?,
            r.try_get("anchor_hash")?,
            r.try_get("seq")?,
            r.try_get("hash")?,
        ))
    }

    pub async fn all_audit_events(&self) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM audit_events ORDER BY seq"));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes events older than `before`, moving the anchor to the last deleted one so what remains
    /// still verifies.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let last = sqlx::query("SELECT seq, hash FROM audit_events WHERE at < $1 ORDER BY seq DESC LIMIT 1")
            .bind(before)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(last) = last else {
            return Ok(0);
        };
        let seq: i64 = last.try_get("seq")?;
        let hash: String = last.try_get("hash")?;
        let gone = sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE audit_head SET anchor_seq = $1, anchor_hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }
}
