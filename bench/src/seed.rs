//! Benchmark persons in bulk: person `i` has a valid resident ID number and a unique mobile number that
//! both follow from `i`, and the same password. The argon2id hash (production parameters) is computed
//! once and shared by every row: this is a fixture, not an account store. Rows go in as multi-row
//! INSERTs, many per transaction.

use std::path::Path;
use std::time::Instant;

use yunid::{App, Config};

/// Every seeded person's password.
pub const PASSWORD: &str = "bench passphrase 2026";

/// What the driver needs to sign in as person `i`.
pub struct SeedPerson {
    pub id_number: String,
    /// National mobile number (11 digits); stored, and seen by the webhook, as `+86…`.
    pub phone: String,
}

/// GB 11643 check character of the first 17 digits.
fn check_char(body: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    char::from(b"10X98765432"[(sum % 11) as usize])
}

/// Person `i`: born on 1950-01-01 plus `i / 1000` days, sequence `i % 1000` (20 million before 2005).
pub fn person(i: usize) -> SeedPerson {
    let base = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default();
    let born = base + chrono::Days::new((i / 1000) as u64);
    let body = format!("110105{}{:03}", born.format("%Y%m%d"), i % 1000);
    let check = check_char(&body);
    SeedPerson {
        id_number: format!("{body}{check}"),
        phone: format!("13{:09}", i % 1_000_000_000),
    }
}

const COLUMNS: usize = 11;
const ROWS_PER_STATEMENT: usize = 500;
const STATEMENTS_PER_TRANSACTION: usize = 20;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO persons (id, id_number_hash, id_number_enc, name, phone, password_hash, \
         real_name_level, status, created_at, updated_at, phone_verified) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", r * COLUMNS + c + 1));
        }
        sql.push(')');
    }
    sql
}

struct Row {
    id: String,
    id_hash: String,
    id_enc: String,
    name: String,
    phone: String,
}

fn row(app: &App, i: usize) -> anyhow::Result<Row> {
    let p = person(i);
    let id = uuid::Uuid::now_v7().to_string();
    Ok(Row {
        id_hash: app.secrets.id_hash(&p.id_number),
        id_enc: app.secrets.encrypt(&p.id_number, id.as_bytes())?,
        id,
        name: format!("测试{i}"),
        phone: format!("+86{}", p.phone),
    })
}

/// Inserts persons `from..to` (all with the benchmark password).
pub async fn seed_range(app: &App, from: usize, to: usize) -> anyhow::Result<()> {
    if to <= from {
        return Ok(());
    }
    let hash = app.hasher.hash(PASSWORD.to_owned(), &*app.random).await?;
    let now = app.now();
    let full_sql = insert_sql(ROWS_PER_STATEMENT);
    let mut i = from;
    while i < to {
        let mut tx = app.db.pool.begin().await?;
        for _ in 0..STATEMENTS_PER_TRANSACTION {
            if i >= to {
                break;
            }
            let n = ROWS_PER_STATEMENT.min(to - i);
            let rows: Vec<Row> = (i..i + n).map(|k| row(app, k)).collect::<anyhow::Result<_>>()?;
            let sql = if n == ROWS_PER_STATEMENT {
                full_sql.clone()
            } else {
                insert_sql(n)
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in &rows {
                q = q
                    .bind(&r.id)
                    .bind(&r.id_hash)
                    .bind(&r.id_enc)
                    .bind(&r.name)
                    .bind(&r.phone)
                    .bind(&hash)
                    .bind(1i64)
                    .bind("active")
                    .bind(now)
                    .bind(now)
                    .bind(1i64);
            }
            q.execute(&mut *tx).await?;
            i += n;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// `yunid-bench seed`: into an existing deployment's database and keys folder.
pub async fn seed_command(
    database_url: &str,
    keys_dir: &Path,
    start: usize,
    count: usize,
) -> anyhow::Result<()> {
    let config = Config {
        database_url: database_url.to_owned(),
        keys_dir: keys_dir.to_owned(),
        database_max_connections: 2,
        ..Config::default()
    };
    let app = App::new(config).await?;
    let t = Instant::now();
    seed_range(&app, start, start + count).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "seeded persons {start}..{} in {secs:.1} s ({:.0} rows/s); password: {PASSWORD:?}",
        start + count,
        count as f64 / secs.max(1e-9)
    );
    let first = person(start);
    println!(
        "person {start}: ID number {} phone {}",
        first.id_number, first.phone
    );
    app.db.pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_id_numbers_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in (0..3_000_000).step_by(997) {
            let p = person(i);
            yunid::identity::ResidentId::parse(&p.id_number).unwrap();
            yunid::identity::Phone::parse(&p.phone).unwrap();
            assert!(seen.insert(p.id_number));
        }
    }
}
