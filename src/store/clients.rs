//! Department apps (OIDC clients).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db};
use crate::keys::Alg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectType {
    Pairwise,
    Public,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub auth_method: AuthMethod,
    pub jwks: Option<String>,
    /// Where a private_key_jwt client publishes its keys (instead of `jwks`; never both).
    pub jwks_uri: Option<String>,
    pub id_token_alg: Alg,
    pub subject_type: SubjectType,
    pub sector: String,
    pub backchannel_logout_uri: Option<String>,
    pub min_acr: i64,
    pub disabled: bool,
    /// Matter (service item) codes this app handles: an agent may act for an organisation here only if
    /// the representation covers them.
    pub matters: Vec<String>,
    /// The department that owns the app (its department admins manage it).
    pub department: String,
    /// Bumped by every edit; the admin API's ETag.
    pub version: i64,
}

/// Client rows by id, this node's copies ([`super::client_cache`]).
pub type ClientCache = super::client_cache::NodeCache<Arc<Client>>;

impl Client {
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// An app with every field at its plainest (code flow, `openid` only, pairwise subjects), for unit
    /// tests and the fuzz harness, which set what they are about with struct update syntax. Never
    /// stored by yunid itself.
    #[doc(hidden)]
    pub fn example(id: &str) -> Client {
        Client {
            id: id.into(),
            name: id.into(),
            secret_hash: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: Vec::new(),
            scopes: vec!["openid".into()],
            grant_types: vec!["authorization_code".into()],
            auth_method: AuthMethod::ClientSecretBasic,
            jwks: None,
            jwks_uri: None,
            id_token_alg: Alg::ES256,
            subject_type: SubjectType::Pairwise,
            sector: "app.example".into(),
            backchannel_logout_uri: None,
            min_acr: 1,
            disabled: false,
            matters: Vec::new(),
            department: String::new(),
            version: 1,
        }
    }
}

fn from_row(row: &AnyRow) -> Result<Client, sqlx::Error> {
    let list = |col: &str| -> Result<Vec<String>, sqlx::Error> {
        let raw: String = row.try_get(col)?;
        serde_json::from_str(&raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    let auth: String = row.try_get("auth_method")?;
    let alg: String = row.try_get("id_token_alg")?;
    let subject: String = row.try_get("subject_type")?;
    let disabled: i64 = row.try_get("disabled")?;
    Ok(Client {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        redirect_uris: list("redirect_uris")?,
        post_logout_redirect_uris: list("post_logout_redirect_uris")?,
        scopes: list("scopes")?,
        grant_types: list("grant_types")?,
        auth_method: AuthMethod::parse(&auth).unwrap_or(AuthMethod::ClientSecretBasic),
        jwks: row.try_get("jwks")?,
        jwks_uri: row.try_get("jwks_uri")?,
        id_token_alg: Alg::parse(&alg).unwrap_or(Alg::RS256),
        subject_type: if subject == "public" {
            SubjectType::Public
        } else {
            SubjectType::Pairwise
        },
        sector: row.try_get("sector")?,
        backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
        min_acr: row.try_get("min_acr")?,
        disabled: disabled != 0,
        matters: list("matters")?,
        department: row.try_get("department")?,
        version: row.try_get("version")?,
    })
}

const COLUMNS: &str = "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, \
     auth_method, jwks, id_token_alg, subject_type, sector, backchannel_logout_uri, min_acr, disabled, matters, department, version, \
     jwks_uri";

impl Db {
    /// The client, from this node's cache when it holds a fresh copy ([`super::client_cache`]).
    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, sqlx::Error> {
        // Dated when the read starts: what it returns is at least that fresh.
        let now = self.clock.now();
        let generation = match self.clients.get(id, now) {
            Ok(client) => return Ok(Some(client)),
            Err(generation) => generation,
        };
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients WHERE id = $1"));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        let Some(client) = row.as_ref().map(from_row).transpose()? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        self.clients.put(id.to_owned(), client.clone(), generation, now);
        Ok(Some(client))
    }

    /// Starts listening for other nodes' client changes and revocations (PostgreSQL); until it listens,
    /// and whenever the listening connection is down, this node reads clients and revocations from the
    /// database every time.
    pub fn watch_changes(&self, url: &str) {
        if self.backend == Backend::Postgres {
            tokio::spawn(super::client_cache::listen(
                url.to_owned(),
                super::client_cache::Watched {
                    clients: Arc::downgrade(&self.clients),
                    live_tokens: Arc::downgrade(&self.live_tokens),
                },
            ));
        }
    }

    /// Applies a change to one client row: the statement and, on PostgreSQL, the notification to the other
    /// nodes in one transaction; then this node's copy is evicted, before the caller hears of success.
    pub(super) async fn change_client(
        &self,
        id: &str,
        update: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = update.execute(&mut *tx).await?;
        self.announce_client_change(&mut tx, id).await?;
        tx.commit().await?;
        self.forget_client(id);
        Ok(done.rows_affected() == 1)
    }

    /// Inside a transaction that changes the `clients` row `id`: every other node's cache forgets it
    /// when the transaction commits (PostgreSQL delivers NOTIFY at commit). After the commit, call
    /// [`Db::forget_client`] for this node. Every statement that changes `clients` goes through this
    /// or [`Db::change_client`].
    pub async fn announce_client_change(
        &self,
        tx: &mut sqlx::AnyConnection,
        id: &str,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::client_cache::CHANNEL)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// This node's cache forgets client `id` (after a change committed).
    pub fn forget_client(&self, id: &str) {
        self.clients.evict(id);
    }

    pub async fn insert_client(&self, c: &Client, now: i64) -> Result<(), sqlx::Error> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, \
             grant_types, auth_method, jwks, id_token_alg, subject_type, sector, backchannel_logout_uri, min_acr, \
             disabled, created_at, matters, department, jwks_uri) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(json(&c.redirect_uris))
        .bind(json(&c.post_logout_redirect_uris))
        .bind(json(&c.scopes))
        .bind(json(&c.grant_types))
        .bind(c.auth_method.as_str())
        .bind(&c.jwks)
        .bind(c.id_token_alg.as_str())
        .bind(match c.subject_type {
            SubjectType::Public => "public",
            SubjectType::Pairwise => "pairwise",
        })
        .bind(&c.sector)
        .bind(&c.backchannel_logout_uri)
        .bind(c.min_acr)
        .bind(i64::from(c.disabled))
        .bind(now)
        .bind(json(&c.matters))
        .bind(&c.department)
        .bind(&c.jwks_uri)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

// Every statement that changes a row of `clients` goes through `change_client`, so caches learn of it.
impl Db {
    /// Replaces an app's secret hash; the old secret stops working at once.
    pub async fn set_client_secret(&self, id: &str, secret_hash: &str) -> Result<bool, sqlx::Error> {
        let update = sqlx::query("UPDATE clients SET secret_hash = $1, version = version + 1 WHERE id = $2")
            .bind(secret_hash)
            .bind(id);
        self.change_client(id, update).await
    }

    /// Disables (or enables) an app; a disabled app is refused at once, on every node.
    pub async fn set_client_disabled(&self, id: &str, disabled: bool) -> Result<bool, sqlx::Error> {
        let update = sqlx::query("UPDATE clients SET disabled = $1, version = version + 1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(id);
        self.change_client(id, update).await
    }

    pub async fn admin_roles_of(&self, person_id: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query("SELECT role, department FROM admin_roles WHERE person_id = $1")
            .bind(person_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("role")?, r.try_get("department")?)))
            .collect()
    }

    /// Takes a role away; false when the person did not hold it.
    pub async fn revoke_admin_role(
        &self,
        person_id: &str,
        role: &str,
        department: &str,
    ) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM admin_roles WHERE person_id = $1 AND role = $2 AND department = $3")
                .bind(person_id)
                .bind(role)
                .bind(department)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn grant_admin_role(
        &self,
        person_id: &str,
        role: &str,
        department: &str,
        by: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO admin_roles (person_id, role, department, granted_by, created_at) VALUES ($1,$2,$3,$4,$5) \
             ON CONFLICT (person_id, role, department) DO NOTHING",
        )
        .bind(person_id)
        .bind(role)
        .bind(department)
        .bind(by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn super_admin_count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM admin_roles WHERE role = 'super_admin'")
            .fetch_one(&self.pool)
            .await
    }
}

impl Db {
    /// Every app (for the console), by name.
    pub async fn all_clients(&self) -> Result<Vec<Client>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients ORDER BY name"));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }
}

impl Db {
    /// Saves an app's settings, and replaces the licence types it may receive when given, if it is still
    /// at `version`; false (and nothing changed) when it changed meanwhile.
    pub async fn edit_client(
        &self,
        c: &Client,
        version: i64,
        licence_types: Option<&[String]>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let done = sqlx::query(
            "UPDATE clients SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3, scopes = $4, \
             grant_types = $5, auth_method = $6, jwks = $7, subject_type = $8, sector = $9, \
             backchannel_logout_uri = $10, min_acr = $11, disabled = $12, matters = $13, jwks_uri = $14, \
             version = version + 1 WHERE id = $15 AND version = $16",
        )
        .bind(&c.name)
        .bind(json(&c.redirect_uris))
        .bind(json(&c.post_logout_redirect_uris))
        .bind(json(&c.scopes))
        .bind(json(&c.grant_types))
        .bind(c.auth_method.as_str())
        .bind(&c.jwks)
        .bind(match c.subject_type {
            SubjectType::Public => "public",
            SubjectType::Pairwise => "pairwise",
        })
        .bind(&c.sector)
        .bind(&c.backchannel_logout_uri)
        .bind(c.min_acr)
        .bind(i64::from(c.disabled))
        .bind(json(&c.matters))
        .bind(&c.jwks_uri)
        .bind(&c.id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.announce_client_change(&mut tx, &c.id).await?;
        if let Some(codes) = licence_types {
            sqlx::query("DELETE FROM client_licence_types WHERE client_id = $1")
                .bind(&c.id)
                .execute(&mut *tx)
                .await?;
            for code in codes {
                sqlx::query(
                    "INSERT INTO client_licence_types (client_id, type_code) VALUES ($1,$2) \
                     ON CONFLICT (client_id, type_code) DO NOTHING",
                )
                .bind(&c.id)
                .bind(code)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.forget_client(&c.id);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::store::client_cache::TTL;

    fn app(name: &str) -> Client {
        Client {
            name: name.into(),
            ..Client::example("app")
        }
    }

    #[tokio::test]
    async fn a_cached_client_is_read_again_once_the_node_clock_passes_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/clients.db", dir.path().display());
        let clock = Arc::new(Clock::default());
        let db = Db::connect(&url, 2).await.unwrap().with_clock(clock.clone());
        db.insert_client(&app("before"), clock.now()).await.unwrap();
        assert_eq!(db.client("app").await.unwrap().unwrap().name, "before");
        // Changed behind this node's back (another node, whose notification was lost).
        sqlx::query("UPDATE clients SET name = 'after' WHERE id = 'app'")
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(db.client("app").await.unwrap().unwrap().name, "before", "cached");
        clock.advance(TTL);
        assert_eq!(db.client("app").await.unwrap().unwrap().name, "after");
    }
}
