//! Upstream OpenID Connect providers, their links to persons, sign-ins under way at them, link offers,
//! and the yunid sessions they started (`services::federation`).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, is_unique_violation};
use crate::scope::ScopeSet;

#[derive(Clone)]
pub struct UpstreamRow {
    pub id: String,
    pub display_name: String,
    pub logo_url: Option<String>,
    pub discovery_url: String,
    pub client_id: String,
    /// Sealed with `Secrets::encrypt` (associated data `upstream:<id>`).
    pub client_secret_enc: Option<String>,
    pub auth_method: String,
    /// The scopes asked of the upstream (stored space-separated).
    pub scopes: ScopeSet,
    /// JSON (`services::federation::Mapping`).
    pub mapping: String,
    pub enabled: bool,
    /// `api` or `config`.
    pub source: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for UpstreamRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRow")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

const SELECT: &str = "SELECT id, display_name, logo_url, discovery_url, client_id, client_secret_enc, auth_method, \
                      scopes, mapping, enabled, source, version, created_at, updated_at FROM upstreams";

fn from_row(row: &AnyRow) -> Result<UpstreamRow, sqlx::Error> {
    Ok(UpstreamRow {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        logo_url: row.try_get("logo_url")?,
        discovery_url: row.try_get("discovery_url")?,
        client_id: row.try_get("client_id")?,
        client_secret_enc: row.try_get("client_secret_enc")?,
        auth_method: row.try_get("auth_method")?,
        scopes: ScopeSet::parse(&row.try_get::<String, _>("scopes")?),
        mapping: row.try_get("mapping")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        source: row.try_get("source")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A sign-in under way at an upstream.
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub state_hash: String,
    pub upstream_id: String,
    pub browser_hash: String,
    pub req: Option<String>,
    pub nonce_hash: String,
    pub verifier_enc: String,
    pub expires_at: i64,
    /// The earliest upstream `auth_time` accepted (the app asked for `prompt=login` or `max_age`).
    pub min_auth_time: Option<i64>,
}

/// A link between an upstream account (its issuer and subject) and a person.
#[derive(Debug, Clone)]
pub struct LinkRow {
    pub issuer: String,
    pub subject: String,
    pub person_id: String,
    /// The upstream registration that made the link.
    pub upstream_id: String,
    pub created_at: i64,
}

impl Db {
    pub async fn upstreams(&self) -> Result<Vec<UpstreamRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY id"));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// The upstream providers as the login page lists them, read at most once per `client_cache::TTL`
    /// on this node (the page is rendered at every step of a sign-in). A list only: starting a sign-in
    /// at an upstream reads its row (`Db::upstream`), so one disabled on another node is refused at
    /// once even while this node still lists it; this node's own writes forget the list.
    pub async fn listed_upstreams(&self) -> Result<std::sync::Arc<Vec<UpstreamRow>>, sqlx::Error> {
        let now = self.clock.now();
        match self.listed_upstreams.get("", now) {
            Ok(rows) => Ok(rows),
            Err(generation) => {
                let rows = std::sync::Arc::new(self.upstreams().await?);
                self.listed_upstreams
                    .put(String::new(), rows.clone(), generation, now);
                Ok(rows)
            }
        }
    }

    pub async fn upstream(&self, id: &str) -> Result<Option<UpstreamRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1"));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Inserts a new upstream; false when the id is taken.
    pub async fn insert_upstream(&self, u: &UpstreamRow) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "INSERT INTO upstreams (id, display_name, logo_url, discovery_url, client_id, client_secret_enc, \
             auth_method, scopes, mapping, enabled, source, version, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
        )
        .bind(&u.id)
        .bind(&u.display_name)
        .bind(&u.logo_url)
        .bind(&u.discovery_url)
        .bind(&u.client_id)
        .bind(&u.client_secret_enc)
        .bind(&u.auth_method)
        .bind(u.scopes.to_string())
        .bind(&u.mapping)
        .bind(i64::from(u.enabled))
        .bind(&u.source)
        .bind(u.version)
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&self.pool)
        .await;
        self.listed_upstreams.clear();
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces an upstream's settings if it is still at `version`; false when it changed or is gone.
    pub async fn update_upstream(&self, u: &UpstreamRow, version: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE upstreams SET display_name = $1, logo_url = $2, discovery_url = $3, client_id = $4, \
             client_secret_enc = $5, auth_method = $6, scopes = $7, mapping = $8, enabled = $9, source = $10, \
             version = version + 1, updated_at = $11 WHERE id = $12 AND version = $13",
        )
        .bind(&u.display_name)
        .bind(&u.logo_url)
        .bind(&u.discovery_url)
        .bind(&u.client_id)
        .bind(&u.client_secret_enc)
        .bind(&u.auth_method)
        .bind(u.scopes.to_string())
        .bind(&u.mapping)
        .bind(i64::from(u.enabled))
        .bind(&u.source)
        .bind(u.updated_at)
        .bind(&u.id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        self.listed_upstreams.clear();
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_upstream_flow(&self, f: &FlowRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO upstream_flows (state_hash, upstream_id, browser_hash, req, nonce_hash, verifier_enc, \
             expires_at, min_auth_time) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(&f.state_hash)
        .bind(&f.upstream_id)
        .bind(&f.browser_hash)
        .bind(&f.req)
        .bind(&f.nonce_hash)
        .bind(&f.verifier_enc)
        .bind(f.expires_at)
        .bind(f.min_auth_time)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a sign-in under way at `upstream_id`, once, in the browser that started it and before it
    /// expires: one statement marks it used, so two callbacks with the same `state` cannot both proceed.
    pub async fn take_upstream_flow(
        &self,
        state_hash: &str,
        upstream_id: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<Option<FlowRow>, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE upstream_flows SET used_at = $1 \
             WHERE state_hash = $2 AND browser_hash = $3 AND upstream_id = $4 AND used_at IS NULL \
             AND expires_at > $1",
        )
        .bind(now)
        .bind(state_hash)
        .bind(browser_hash)
        .bind(upstream_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT state_hash, upstream_id, browser_hash, req, nonce_hash, verifier_enc, expires_at, \
             min_auth_time FROM upstream_flows WHERE state_hash = $1",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(FlowRow {
                state_hash: r.try_get("state_hash")?,
                upstream_id: r.try_get("upstream_id")?,
                browser_hash: r.try_get("browser_hash")?,
                req: r.try_get("req")?,
                nonce_hash: r.try_get("nonce_hash")?,
                verifier_enc: r.try_get("verifier_enc")?,
                expires_at: r.try_get("expires_at")?,
                min_auth_time: r.try_get("min_auth_time")?,
            })
        })
        .transpose()
    }

    /// The person an upstream account (issuer, subject) is linked to.
    pub async fn upstream_link(&self, issuer: &str, subject: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT person_id FROM upstream_links WHERE issuer = $1 AND subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
    }

    /// Links an upstream account to a person; false when that account is linked already.
    pub async fn insert_upstream_link(&self, l: &LinkRow) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "INSERT INTO upstream_links (issuer, subject, person_id, upstream_id, created_at) \
             VALUES ($1,$2,$3,$4,$5)",
        )
        .bind(&l.issuer)
        .bind(&l.subject)
        .bind(&l.person_id)
        .bind(&l.upstream_id)
        .bind(l.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn upstream_links_of(&self, person_id: &str) -> Result<Vec<LinkRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT issuer, subject, person_id, upstream_id, created_at FROM upstream_links \
             WHERE person_id = $1 ORDER BY created_at, issuer",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LinkRow {
                    issuer: r.try_get("issuer")?,
                    subject: r.try_get("subject")?,
                    person_id: r.try_get("person_id")?,
                    upstream_id: r.try_get("upstream_id")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Unlinks one upstream account from a person, recording the opt-out first, in one transaction: no
    /// callback sees the link gone without the opt-out. False when there was no such link.
    pub async fn unlink_upstream(
        &self,
        person_id: &str,
        issuer: &str,
        subject: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO upstream_opt_outs (issuer, person_id, created_at) VALUES ($1,$2,$3) \
             ON CONFLICT (issuer, person_id) DO NOTHING",
        )
        .bind(issuer)
        .bind(person_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM upstream_links WHERE person_id = $1 AND issuer = $2 AND subject = $3")
                .bind(person_id)
                .bind(issuer)
                .bind(subject)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn upstream_opted_out(&self, issuer: &str, person_id: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM upstream_opt_outs WHERE issuer = $1 AND person_id = $2",
        )
        .bind(issuer)
        .bind(person_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    pub async fn delete_upstream_opt_out(&self, issuer: &str, person_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM upstream_opt_outs WHERE issuer = $1 AND person_id = $2")
            .bind(issuer)
            .bind(person_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_link_offer(
        &self,
        id_hash: &str,
        browser_hash: &str,
        upstream_id: &str,
        subject: &str,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO upstream_link_offers (id_hash, browser_hash, upstream_id, subject, expires_at) \
             VALUES ($1,$2,$3,$4,$5)",
        )
        .bind(id_hash)
        .bind(browser_hash)
        .bind(upstream_id)
        .bind(subject)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A link offer not yet used, in the browser it was made for, before it expires: `(upstream, expires_at)`.
    pub async fn link_offer(
        &self,
        id_hash: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT upstream_id, expires_at FROM upstream_link_offers \
             WHERE id_hash = $1 AND browser_hash = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(id_hash)
        .bind(browser_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("upstream_id")?, r.try_get("expires_at")?)))
            .transpose()
    }

    /// Takes a link offer once, in the browser it was made for, before it expires: `(upstream, subject)`.
    pub async fn take_link_offer(
        &self,
        id_hash: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE upstream_link_offers SET used_at = $1 \
             WHERE id_hash = $2 AND browser_hash = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(id_hash)
        .bind(browser_hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT upstream_id, subject FROM upstream_link_offers WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("upstream_id")?, r.try_get("subject")?)))
            .transpose()
    }

    pub async fn insert_upstream_session(
        &self,
        sid: &str,
        upstream_id: &str,
        subject: &str,
        upstream_sid: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO upstream_sessions (sid, upstream_id, subject, upstream_sid, created_at, expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(sid)
        .bind(upstream_id)
        .bind(subject)
        .bind(upstream_sid)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The yunid sessions an upstream session started: by the upstream's `sid` when given, else every
    /// session of the subject; only those started at or before `issued_at` (a logout token ends what
    /// existed when it was made, never a later sign-in).
    pub async fn upstream_session_sids(
        &self,
        upstream_id: &str,
        subject: Option<&str>,
        upstream_sid: Option<&str>,
        issued_at: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT sid FROM upstream_sessions WHERE upstream_id = $1 AND created_at <= $2 \
             AND ($3 IS NULL OR subject = $3) AND ($4 IS NULL OR upstream_sid = $4)",
        )
        .bind(upstream_id)
        .bind(issued_at)
        .bind(subject)
        .bind(upstream_sid)
        .fetch_all(&self.pool)
        .await
    }

    /// Records a logout token's `jti`; false when it was seen before.
    pub async fn remember_logout_jti(
        &self,
        upstream_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let result =
            sqlx::query("INSERT INTO upstream_logout_jtis (upstream_id, jti, expires_at) VALUES ($1,$2,$3)")
                .bind(upstream_id)
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

    /// Deletes expired federation state.
    pub async fn sweep_upstream_state(&self, now: i64) -> Result<u64, sqlx::Error> {
        let mut n = 0;
        for sql in [
            "DELETE FROM upstream_flows WHERE expires_at < $1",
            "DELETE FROM upstream_link_offers WHERE expires_at < $1",
            "DELETE FROM upstream_sessions WHERE expires_at < $1",
            "DELETE FROM upstream_logout_jtis WHERE expires_at < $1",
        ] {
            n += sqlx::query(sql)
                .bind(now - 60)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}
