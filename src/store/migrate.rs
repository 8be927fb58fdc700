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
    Migration {
        version: 16,
        name: "proofing",
        sqlite: include_str!("../../migrations/sqlite/0016_proofing.sql"),
        postgres: include_str!("../../migrations/postgres/0016_proofing.sql"),
    },
    Migration {
        version: 17,
        name: "org_bindings",
        sqlite: include_str!("../../migrations/sqlite/0017_org_bindings.sql"),
        postgres: include_str!("../../migrations/postgres/0017_org_bindings.sql"),
    },
    Migration {
        version: 18,
        name: "device_grant",
        sqlite: include_str!("../../migrations/sqlite/0018_device_grant.sql"),
        postgres: include_str!("../../migrations/postgres/0018_device_grant.sql"),
    },
    Migration {
        version: 19,
        name: "scan_login",
        sqlite: include_str!("../../migrations/sqlite/0019_scan_login.sql"),
        postgres: include_str!("../../migrations/postgres/0019_scan_login.sql"),
    },
    Migration {
        version: 20,
        name: "federation",
        sqlite: include_str!("../../migrations/sqlite/0020_federation.sql"),
        postgres: include_str!("../../migrations/postgres/0020_federation.sql"),
    },
    Migration {
        version: 21,
        name: "federation_links",
        sqlite: include_str!("../../migrations/sqlite/0021_federation_links.sql"),
        postgres: include_str!("../../migrations/postgres/0021_federation_links.sql"),
    },
    Migration {
        version: 22,
        name: "cross_device_review",
        sqlite: include_str!("../../migrations/sqlite/0022_cross_device_review.sql"),
        postgres: include_str!("../../migrations/postgres/0022_cross_device_review.sql"),
    },
    Migration {
        version: 23,
        name: "proofing_review",
        sqlite: include_str!("../../migrations/sqlite/0023_proofing_review.sql"),
        postgres: include_str!("../../migrations/postgres/0023_proofing_review.sql"),
    },
    Migration {
        version: 24,
        name: "scan_grant",
        sqlite: include_str!("../../migrations/sqlite/0024_scan_grant.sql"),
        postgres: include_str!("../../migrations/postgres/0024_scan_grant.sql"),
    },
    Migration {
        version: 25,
        name: "proofing_review2",
        sqlite: include_str!("../../migrations/sqlite/0025_proofing_review2.sql"),
        postgres: include_str!("../../migrations/postgres/0025_proofing_review2.sql"),
    },
    Migration {
        version: 26,
        name: "code_grants",
        sqlite: include_str!("../../migrations/sqlite/0026_code_grants.sql"),
        postgres: include_str!("../../migrations/postgres/0026_code_grants.sql"),
    },
    Migration {
        version: 27,
        name: "sms_code_sends",
        sqlite: include_str!("../../migrations/sqlite/0027_sms_code_sends.sql"),
        postgres: include_str!("../../migrations/postgres/0027_sms_code_sends.sql"),
    },
];

const LOCK_ID: i64 = 0x79_756e_6964; // "yunid"

pub async fn run(db: &Db) -> anyhow::Result<()> {
    run_until(db, i64::MAX).await?;
    check_triggers(db).await
}

/// The triggers yunid's writes rely on (migrations 0026, 0027): without `codes_first_refresh` a redeemed
/// code's refresh token would not be stored, and every app's first refresh would fail; without the views'
/// `INSTEAD OF` triggers every code flow or SMS send would fail. A migration that rebuilds `codes` (SQLite's
/// table rebuild drops its triggers) or a restore without triggers must stop the node at start, not there.
const TRIGGERS: [(&str, &str); 3] = [
    ("code_grants_insert", "code_grants"),
    ("codes_first_refresh", "codes"),
    ("sms_code_sends_insert", "sms_code_sends"),
];

async fn check_triggers(db: &Db) -> anyhow::Result<()> {
    // The catalogues differ, so the text does (as the advisory lock above). Each trigger on its own table.
    let sql = match db.backend {
        Backend::Sqlite => "SELECT name || ' ON ' || tbl_name FROM sqlite_master WHERE type = 'trigger'",
        Backend::Postgres => {
            "SELECT CAST(t.tgname AS TEXT) || ' ON ' || CAST(c.relname AS TEXT) FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE c.relnamespace = CAST(current_schema() AS regnamespace) AND t.tgenabled <> 'D' \
             AND NOT t.tgisinternal"
        }
    };
    let found: Vec<String> = sqlx::query_scalar(sql).fetch_all(&db.pool).await?;
    let missing: Vec<&str> = TRIGGERS
        .into_iter()
        .filter(|(name, table)| !found.iter().any(|f| *f == format!("{name} ON {table}")))
        .map(|(name, _)| name)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the database lacks the trigger(s) {} of migrations 0026-0027 (or they are disabled): restore them \
         (deploy/OPERATIONS.md, Rolling upgrade) before starting yunid",
        missing.join(", ")
    );
    Ok(())
}

/// Applies the migrations up to version `last` (upgrade tests seed data in an older schema).
pub async fn run_until(db: &Db, last: i64) -> anyhow::Result<()> {
    let mut conn = db.pool.acquire().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(db.backend, &mut conn, last).await;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(backend: Backend, conn: &mut sqlx::AnyConnection, last: i64) -> anyhow::Result<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
    )
    .await?;
    for m in MIGRATIONS.iter().filter(|m| m.version <= last) {
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

/// Splits a migration into statements at the semicolons that end them, dropping comments. A semicolon
/// inside a string ('…'), a quoted identifier ("…"), a dollar-quoted body (PostgreSQL `$$ … $$` or
/// `$tag$ … $tag$`, as in a function), a SQLite trigger's `BEGIN … END` body or a comment does not end a
/// statement.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let taken = match c {
            '-' if rest.starts_with("--") => {
                let end = rest.find('\n').unwrap_or(rest.len());
                rest = &rest[end..];
                continue;
            }
            '/' if rest.starts_with("/*") => {
                let end = rest[2..].find("*/").map_or(rest.len(), |i| i + 4);
                rest = &rest[end..];
                current.push(' ');
                continue;
            }
            '\'' | '"' => quoted(rest, c),
            '$' => dollar_tag(rest).map_or(1, |tag| {
                rest[tag.len()..]
                    .find(tag)
                    .map_or(rest.len(), |i| tag.len() + i + tag.len())
            }),
            ';' if in_trigger_body(&current) => 1,
            ';' => {
                current.push(';');
                if !current.trim().trim_end_matches(';').trim().is_empty() {
                    out.push(std::mem::take(&mut current).trim().to_owned());
                }
                current.clear();
                rest = &rest[1..];
                continue;
            }
            _ => c.len_utf8(),
        };
        current.push_str(&rest[..taken]);
        rest = &rest[taken..];
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// Whether `text`, a statement read so far, is a SQLite `CREATE TRIGGER … BEGIN` whose body has not reached
/// its `END`: the semicolons that end the body's own statements do not end the trigger. `CASE … END` inside
/// the body nests; words inside quotes do not count. (A PostgreSQL trigger names a function instead and has
/// no `BEGIN`; a function's body is dollar-quoted.)
fn in_trigger_body(text: &str) -> bool {
    let mut words = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\'' || c == '"' {
            rest = &rest[quoted(rest, c)..];
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            words.push(rest[..end].to_ascii_uppercase());
            rest = &rest[end..];
        } else {
            rest = &rest[c.len_utf8()..];
        }
    }
    let is_trigger =
        words.first().is_some_and(|w| w == "CREATE") && words.iter().skip(1).take(3).any(|w| w == "TRIGGER");
    let Some(body) = words.iter().position(|w| w == "BEGIN") else {
        return false;
    };
    let mut depth = 0_i32;
    for w in &words[body..] {
        match w.as_str() {
            "BEGIN" | "CASE" => depth += 1,
            "END" => depth -= 1,
            _ => {}
        }
    }
    is_trigger && depth > 0
}

/// The length of a quoted run starting at `text` (opening `quote` included), a doubled quote being an
/// escaped one; the whole rest when it is not closed.
fn quoted(text: &str, quote: char) -> usize {
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if chars.peek().is_some_and(|(_, next)| *next == quote) {
                chars.next();
            } else {
                return i + 1;
            }
        }
    }
    text.len()
}

/// The opening tag of a dollar-quoted body (`$$` or `$name$`) at the start of `text`; `None` for `$1`
/// (a placeholder) or a lone `$`.
fn dollar_tag(text: &str) -> Option<&str> {
    let body = &text[1..];
    let end = body.find('$')?;
    let name = &body[..end];
    let valid = name
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| &text[..end + 2])
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn a_sqlite_trigger_body_stays_one_statement() {
        let sql = "CREATE TABLE t (id INTEGER);
CREATE TRIGGER t_copy AFTER INSERT ON t
BEGIN
    INSERT INTO u (id) VALUES (NEW.id);
    INSERT INTO v (note) VALUES ('end;');
END;
CREATE TRIGGER t_gone AFTER DELETE ON t BEGIN DELETE FROM u WHERE id = OLD.id; END;
CREATE TRIGGER t_case AFTER UPDATE ON t BEGIN
    UPDATE u SET legend = CASE WHEN NEW.id > 0 THEN 'END' ELSE \"end\" END;
    DELETE FROM v WHERE note = 'BEGIN';
END;
CREATE TRIGGER pg AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();
INSERT INTO t (id) VALUES (1);";
        let got = statements(sql);
        assert_eq!(got.len(), 6, "{got:#?}");
        let trigger = |i: usize, name: &str| {
            assert!(
                got[i].starts_with(&format!("CREATE TRIGGER {name} ")) && got[i].ends_with("END;"),
                "{}",
                got[i]
            );
        };
        trigger(1, "t_copy");
        trigger(2, "t_gone");
        trigger(3, "t_case");
        assert!(
            got[1].contains("VALUES (NEW.id);") && got[1].contains("'end;'"),
            "{}",
            got[1]
        );
        assert!(got[3].contains("'BEGIN';"), "{}", got[3]);
        assert!(got[4].ends_with("f();"), "{}", got[4]);
        assert_eq!(got[5], "INSERT INTO t (id) VALUES (1);");
    }

    #[test]
    fn a_function_body_in_dollar_quotes_stays_one_statement() {
        let sql = "-- a comment; with a semicolon
CREATE TABLE t (id BIGINT PRIMARY KEY, note TEXT DEFAULT 'a;b' /* c; d */);
CREATE FUNCTION touch() RETURNS trigger AS $$
BEGIN
    NEW.note := 'it''s; here';
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION tagged() RETURNS text AS $body$ SELECT 'x;$$;y' $body$ LANGUAGE sql;
SELECT * FROM t WHERE id = $1 AND note = \"weird;name\";
INSERT INTO t (id) VALUES (1);";
        let got = statements(sql);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(
            got[0].starts_with("CREATE TABLE t") && got[0].contains("'a;b'"),
            "{}",
            got[0]
        );
        assert!(!got[0].contains("c; d"), "comments are dropped: {}", got[0]);
        assert!(
            got[1].contains("RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;"),
            "{}",
            got[1]
        );
        assert!(got[1].contains("'it''s; here'"), "{}", got[1]);
        assert!(got[2].ends_with("$body$ LANGUAGE sql;"), "{}", got[2]);
        assert!(
            got[3].contains("$1") && got[3].ends_with("\"weird;name\";"),
            "{}",
            got[3]
        );
        assert_eq!(got[4], "INSERT INTO t (id) VALUES (1);");
    }

    #[test]
    fn every_shipped_migration_splits_as_before() {
        // Statements end with a semicolon at the end of a line in the files shipped before the first
        // trigger (0026, whose bodies hold statements of their own: counted below).
        for m in super::MIGRATIONS.iter().filter(|m| m.version < 26) {
            for sql in [m.sqlite, m.postgres] {
                let ends = sql
                    .lines()
                    .filter(|l| !l.trim().starts_with("--") && l.trim().ends_with(';'))
                    .count();
                assert_eq!(statements(sql).len(), ends, "{}", m.name);
            }
        }
        let code_grants = &super::MIGRATIONS[25];
        assert_eq!(code_grants.name, "code_grants");
        // A view, its trigger, two columns, a trigger; PostgreSQL adds a function per trigger.
        assert_eq!(statements(code_grants.sqlite).len(), 5);
        assert_eq!(statements(code_grants.postgres).len(), 7);
        let sms_code_sends = &super::MIGRATIONS[26];
        assert_eq!(sms_code_sends.name, "sms_code_sends");
        // A view and its trigger; PostgreSQL adds the trigger's function.
        assert_eq!(statements(sms_code_sends.sqlite).len(), 2);
        assert_eq!(statements(sms_code_sends.postgres).len(), 3);
    }
}
