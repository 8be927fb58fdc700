//! Applies the SQL files under `migrations/<backend>/` in order, once each, recording them in
//! `schema_migrations`. On PostgreSQL an advisory lock keeps nodes that start together from racing.

use sqlx::{AssertSqlSafe, Executor};

use super::{Backend, Db};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sqlite: include_str!("../../migrations/sqlite/0001_core.sql"),
        postgres: include_str!("../../migrations/postgres/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        sqlite: include_str!("../../migrations/sqlite/0002_identity.sql"),
        postgres: include_str!("../../migrations/postgres/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "login",
        sqlite: include_str!("../../migrations/sqlite/0003_login.sql"),
        postgres: include_str!("../../migrations/postgres/0003_login.sql"),
    },
    Migration {
        version: 4,
        name: "licences",
        sqlite: include_str!("../../migrations/sqlite/0004_licences.sql"),
        postgres: include_str!("../../migrations/postgres/0004_licences.sql"),
    },
    Migration {
        version: 5,
        name: "admin",
        sqlite: include_str!("../../migrations/sqlite/0005_admin.sql"),
        postgres: include_str!("../../migrations/postgres/0005_admin.sql"),
    },
    Migration {
        version: 6,
        name: "versions",
        sqlite: include_str!("../../migrations/sqlite/0006_versions.sql"),
        postgres: include_str!("../../migrations/postgres/0006_versions.sql"),
    },
    Migration {
        version: 7,
        name: "dcr",
        sqlite: include_str!("../../migrations/sqlite/0007_dcr.sql"),
        postgres: include_str!("../../migrations/postgres/0007_dcr.sql"),
    },
    Migration {
        version: 8,
        name: "signing_keys",
        sqlite: include_str!("../../migrations/sqlite/0008_signing_keys.sql"),
        postgres: include_str!("../../migrations/postgres/0008_signing_keys.sql"),
    },
    Migration {
        version: 9,
        name: "console",
        sqlite: include_str!("../../migrations/sqlite/0009_console.sql"),
        postgres: include_str!("../../migrations/postgres/0009_console.sql"),
    },
    Migration {
        version: 10,
        name: "jwks_uri",
        sqlite: include_str!("../../migrations/sqlite/0010_jwks_uri.sql"),
        postgres: include_str!("../../migrations/postgres/0010_jwks_uri.sql"),
    },
    Migration {
        version: 11,
        name: "browser_binding",
        sqlite: include_str!("../../migrations/sqlite/0011_browser_binding.sql"),
        postgres: include_str!("../../migrations/postgres/0011_browser_binding.sql"),
    },
    Migration {
        version: 12,
        name: "credentials_lock_authority",
        sqlite: include_str!("../../migrations/sqlite/0012_credentials_lock_authority.sql"),
        postgres: include_str!("../../migrations/postgres/0012_credentials_lock_authority.sql"),
    },
    Migration {
        version: 13,
        name: "outbound_logout_at_delivery",
        sqlite: include_str!("../../migrations/sqlite/0013_outbound_logout_at_delivery.sql"),
        postgres: include_str!("../../migrations/postgres/0013_outbound_logout_at_delivery.sql"),
    },
    Migration {
        version: 14,
        name: "throttle_reservations_outbox",
        sqlite: include_str!("../../migrations/sqlite/0014_throttle_reservations_outbox.sql"),
        postgres: include_str!("../../migrations/postgres/0014_throttle_reservations_outbox.sql"),
    },
    Migration {
        version: 15,
        name: "reps_appointer",
        sqlite: include_str!("../../migrations/sqlite/0015_reps_appointer.sql"),
        postgres: include_str!("../../migrations/postgres/0015_reps_appointer.sql"),
    },
];

const LOCK_ID: i64 = 0x79_756e_6964; // "yunid"

pub async fn run(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.pool.acquire().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(db.backend, &mut conn).await;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(backend: Backend, conn: &mut sqlx::AnyConnection) -> anyhow::Result<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
    )
    .await?;
    for m in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *conn)
                .await?;
        if done.is_some() {
            continue;
        }
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for statement in statements(sql) {
            tx.execute(AssertSqlSafe(statement)).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

/// Splits a migration into statements at semicolons that end a line, dropping comment lines.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}
