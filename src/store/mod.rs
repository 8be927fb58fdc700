//! Storage: one narrow interface per aggregate over an `AnyPool`, one SQL text (`$1` placeholders) for
//! SQLite and PostgreSQL. Times are epoch seconds, ids and JSON text, flags 0/1.

mod migrate;

pub mod client_cache;

pub mod audit;
pub mod clients;
pub mod console;
pub mod credentials;
pub mod device;
pub mod families;
pub mod keys;
pub mod licences;
pub mod login;
pub mod logout;
pub mod misc;
pub mod orgs;
pub mod persons;
pub mod proofing;
pub mod registration;
pub mod requests;
pub mod scan;
pub mod sessions;
pub mod sms_outbox;
pub mod upstreams;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::clock::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The database behind every node.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Client rows this node has read ([`client_cache`]); shared by every clone of this `Db`.
    clients: std::sync::Arc<clients::ClientCache>,
    /// Access tokens this node has found not revoked ([`client_cache`]); shared likewise.
    live_tokens: std::sync::Arc<client_cache::LiveTokens>,
    /// This node's audit writer, started by the first append ([`audit`]).
    audit: std::sync::Arc<audit::AuditQueue>,
    /// The upstream providers as the login page lists them ([`Db::listed_upstreams`]).
    listed_upstreams: std::sync::Arc<client_cache::NodeCache<std::sync::Arc<Vec<upstreams::UpstreamRow>>>>,
    /// The node's clock, which dates what the caches above hold (the app's own: see [`Db::with_clock`]).
    clock: std::sync::Arc<Clock>,
}

impl Db {
    /// Connects, creating the SQLite file (and its folder) when needed, and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        let db = Db::open(url, max_connections).await?;
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Applies the migrations up to version `last` only (upgrade tests: data seeded in an older schema,
    /// then [`Db::connect`] applies the rest).
    pub async fn migrate_until(&self, last: i64) -> anyhow::Result<()> {
        migrate::run_until(self, last).await
    }

    /// Connects without migrating (for tools that must not change the schema, such as backups).
    pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else if url.starts_with("sqlite") {
            Backend::Sqlite
        } else {
            anyhow::bail!("database_url must start with sqlite:// or postgres://");
        };
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let max_connections = match (max_connections, backend) {
            (0, Backend::Postgres) => 16,
            (0, Backend::Sqlite) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
                (cores + 1).max(2)
            }
            (n, _) => n,
        };
        let mut pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            // Fail fast when the database is unreachable: a request gets 503 within seconds instead of
            // hanging, and the pool reconnects by itself once the database is back.
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        // SQLite serves one node, whose own writes evict exactly; PostgreSQL caches only once this node
        // listens for other nodes' changes (`watch_changes`). Revocation answers are cached on PostgreSQL
        // only: a SQLite file reads them in microseconds, and a second process on the same file (a rolling
        // restart) would not hear of the other's revocations.
        let single_node = backend == Backend::Sqlite;
        let clients = std::sync::Arc::new(clients::ClientCache::new(single_node, 4_096));
        let live_tokens = std::sync::Arc::new(client_cache::LiveTokens::new(false, 65_536));
        Ok(Db {
            pool,
            backend,
            clients,
            live_tokens,
            audit: Default::default(),
            // A display only (starting a sign-in reads the row itself): kept for the cache's short TTL
            // on every backend, without notifications; this node's own writes forget it.
            listed_upstreams: std::sync::Arc::new(client_cache::NodeCache::new(true, 1)),
            clock: Default::default(),
        })
    }

    /// Dates the node caches with `clock` (the app's, which tests advance) instead of a clock of its own.
    pub fn with_clock(mut self, clock: std::sync::Arc<Clock>) -> Db {
        self.clock = clock;
        self
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// A consistent copy of a SQLite database in a new file (`VACUUM INTO`), taken while nodes keep
    /// serving. PostgreSQL has its own tools for this.
    pub async fn backup_to(&self, path: &std::path::Path) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.backend == Backend::Sqlite,
            "yunid backup is for SQLite; back up PostgreSQL with pg_dump (see deploy/OPERATIONS.md)"
        );
        anyhow::ensure!(!path.exists(), "{} already exists", path.display());
        let path = path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("the backup path must be valid UTF-8"))?;
        let versions: Result<i64, _> = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await;
        anyhow::ensure!(
            versions.is_ok_and(|n| n > 0),
            "the database is not a yunid database (no migrations applied)"
        );
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// `sqlite://path` → an URL that creates the file, after creating its folder.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let query = if query.is_empty() {
        "mode=rwc".to_owned()
    } else if query.contains("mode=") {
        query.to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// True when a database error means the database cannot be reached or is not serving right now (pool
/// timed out, connection lost or refused, server shutting down or out of connections, SQLite busy):
/// the request fails fast with 503 and a retry later may succeed.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL class 08 (connection exception), 57P01–57P03 (shutdown, cannot connect now),
        // 53300 (too many connections); SQLite 5 (busy) and 6 (locked).
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "5" | "6")
        }),
        _ => false,
    }
}

/// [`is_unavailable`] anywhere in an error's chain.
pub fn is_unavailable_chain(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<sqlx::Error>().is_some_and(is_unavailable))
}

/// True when a database error is a unique-key violation (on either backend).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}
