//! Signing keys (sealed PKCS#8, never plaintext) and the nodes' reports of what they publish.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;

/// One row of `signing_keys`.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub sealed: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
}

fn from_row(row: &AnyRow) -> Result<StoredKey, sqlx::Error> {
    Ok(StoredKey {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        sealed: row.try_get("sealed")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}

impl Db {
    /// Every key not yet withdrawn at `published_since` (retired keys stay until their grace ends).
    pub async fn signing_keys(&self, published_since: i64) -> Result<Vec<StoredKey>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT kid, alg, sealed, created_at, activated_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at >= $1 ORDER BY created_at, kid",
        )
        .bind(published_since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn signing_key_count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
            .fetch_one(&self.pool)
            .await
    }

    /// Adds keys in one transaction (first start, rotation, import).
    pub async fn insert_signing_keys(&self, keys: &[StoredKey]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for k in keys {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, sealed, created_at, activated_at, retired_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.sealed)
            .bind(k.created_at)
            .bind(k.activated_at)
            .bind(k.retired_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Lets a published key sign from `now` on and retires the other signing keys of its algorithm.
    /// Returns false when another node promoted it first.
    pub async fn activate_signing_key(&self, kid: &str, alg: &str, now: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let promoted = sqlx::query(
            "UPDATE signing_keys SET activated_at = $1 \
             WHERE kid = $2 AND activated_at IS NULL AND retired_at IS NULL",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if promoted {
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $1 \
                 WHERE alg = $2 AND kid <> $3 AND activated_at IS NOT NULL AND retired_at IS NULL",
            )
            .bind(now)
            .bind(alg)
            .bind(kid)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(promoted)
    }

    /// This node is alive and publishes `published` (space-separated kids).
    pub async fn report_key_node(&self, node_id: &str, now: i64, published: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO key_nodes (node_id, seen_at, published) VALUES ($1, $2, $3) \
             ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at, published = excluded.published",
        )
        .bind(node_id)
        .bind(now)
        .bind(published)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What every node seen since `since` publishes.
    pub async fn live_key_nodes(&self, since: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query("SELECT node_id, published FROM key_nodes WHERE seen_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("node_id")?, r.try_get("published")?)))
            .collect()
    }

    /// A node that stops (SIGTERM) no longer holds back a rotation.
    pub async fn forget_key_node(&self, node_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM key_nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops nodes long gone and keys withdrawn long ago.
    pub async fn sweep_keys(&self, nodes_before: i64, keys_retired_before: i64) -> Result<u64, sqlx::Error> {
        let a = sqlx::query("DELETE FROM key_nodes WHERE seen_at < $1")
            .bind(nodes_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(keys_retired_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(a + b)
    }
}
