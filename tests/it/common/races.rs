//! Races arranged without timing: a trigger makes the database itself run the other party's statement
//! at the exact point between two statements of the step under test (e.g. a logout ending the session
//! right after a redemption claimed its device code). Same effect on SQLite and PostgreSQL.

use yunid::store::Db;

/// After every `event` (`INSERT` / `UPDATE OF col`) on `table` whose new row matches `when` (SQL over
/// `NEW`), the database runs `then` (one statement over `NEW`).
pub async fn on(db: &Db, sqlite: bool, table: &str, event: &str, when: &str, then: &str) {
    let statements = if sqlite {
        vec![format!(
            "CREATE TRIGGER race_{table} AFTER {event} ON {table} FOR EACH ROW WHEN {when} BEGIN {then}; END"
        )]
    } else {
        vec![
            format!(
                "CREATE FUNCTION race_{table}() RETURNS trigger LANGUAGE plpgsql AS $race$ \
                 BEGIN {then}; RETURN NEW; END $race$"
            ),
            format!(
                "CREATE TRIGGER race_{table} AFTER {event} ON {table} FOR EACH ROW WHEN ({when}) \
                 EXECUTE FUNCTION race_{table}()"
            ),
        ]
    };
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&db.pool)
            .await
            .unwrap();
    }
}
