//! Natural persons. The resident ID number is stored encrypted and found through its keyed hash.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;

/// A person's account status (`persons.status`, stored as `active`, `locked` or `disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonStatus {
    Active,
    /// Locked by an administrator (or by proofing); unlocked at the counter.
    Locked,
    Disabled,
}

impl PersonStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonStatus::Active => "active",
            PersonStatus::Locked => "locked",
            PersonStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<PersonStatus> {
        [PersonStatus::Active, PersonStatus::Locked, PersonStatus::Disabled]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// Whether the account may be used (sign in, be released to apps, appoint, be appointed).
    pub fn is_active(self) -> bool {
        self == PersonStatus::Active
    }
}

impl std::fmt::Display for PersonStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone)]
pub struct PersonRow {
    pub id: String,
    pub id_number_hash: String,
    pub id_number_enc: String,
    pub name: String,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub real_name_level: i64,
    pub status: PersonStatus,
    pub phone_verified: bool,
    /// How the real-name level was reached: when, by which method, by whom.
    pub real_name_verified_at: Option<i64>,
    pub real_name_method: Option<String>,
    pub real_name_verified_by: Option<String>,
    /// Bumped by every edit; the admin API's ETag.
    pub version: i64,
    /// A temporary password (set at a counter) stops working at this time and must be replaced.
    pub password_expires_at: Option<i64>,
    pub password_must_change: bool,
}

impl std::fmt::Debug for PersonRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonRow")
            .field("id", &self.id)
            .field("status", &self.status.as_str())
            .finish()
    }
}

pub(super) fn from_row(row: &AnyRow) -> Result<PersonRow, sqlx::Error> {
    from_row_with_id(row, "id")
}

/// A person read through `LEFT JOIN persons p` with [`JOINED_AS_P_ID`]: none when the join found none.
pub(super) fn joined(row: &AnyRow) -> Result<Option<PersonRow>, sqlx::Error> {
    match row.try_get::<Option<String>, _>("p_id")? {
        None => Ok(None),
        Some(_) => from_row_with_id(row, "p_id").map(Some),
    }
}

fn from_row_with_id(row: &AnyRow, id: &str) -> Result<PersonRow, sqlx::Error> {
    Ok(PersonRow {
        id: row.try_get(id)?,
        id_number_hash: row.try_get("id_number_hash")?,
        id_number_enc: row.try_get("id_number_enc")?,
        name: row.try_get("name")?,
        phone: row.try_get("phone")?,
        password_hash: row.try_get("password_hash")?,
        real_name_level: row.try_get("real_name_level")?,
        status: status_of(row)?,
        phone_verified: row.try_get::<i64, _>("phone_verified")? != 0,
        real_name_verified_at: row.try_get("real_name_verified_at")?,
        real_name_method: row.try_get("real_name_method")?,
        real_name_verified_by: row.try_get("real_name_verified_by")?,
        version: row.try_get("version")?,
        password_expires_at: row.try_get("password_expires_at")?,
        password_must_change: row.try_get::<i64, _>("password_must_change")? != 0,
    })
}

/// The stored status (column `status`), of which there are three: anything else is a decoding error,
/// not a fourth state.
/// A person's stored status. A value yunid never writes (one put there by hand) reads as `Disabled`:
/// not active, as every check treated it before the status was typed, so one odd row stops that account
/// only, never a whole list or the accounts appointed under it (and an admin can still set it right).
pub(super) fn status_of(row: &AnyRow) -> Result<PersonStatus, sqlx::Error> {
    let stored: String = row.try_get("status")?;
    Ok(PersonStatus::parse(&stored).unwrap_or_else(|| {
        tracing::warn!(status = %stored, "a person has a status yunid does not know; treated as disabled");
        PersonStatus::Disabled
    }))
}

const SELECT: &str = "SELECT id, id_number_hash, id_number_enc, name, phone, password_hash, real_name_level, \
                      status, phone_verified, real_name_verified_at, real_name_method, real_name_verified_by, version, password_expires_at, \
                      password_must_change FROM persons";

/// The same columns of `persons p`, for a query that joins them to rows whose column names differ from
/// these (sessions).
pub(super) const JOINED: &str = "p.id, p.id_number_hash, p.id_number_enc, p.name, p.phone, p.password_hash, \
                      p.real_name_level, p.status, p.phone_verified, p.real_name_verified_at, p.real_name_method, \
                      p.real_name_verified_by, p.version, p.password_expires_at, p.password_must_change";

/// The same, with the id as `p_id`, for a join with rows that have an `id` of their own (families).
pub(super) const JOINED_AS_P_ID: &str = "p.id AS p_id, p.id_number_hash, p.id_number_enc, p.name, p.phone, \
                      p.password_hash, p.real_name_level, p.status, p.phone_verified, p.real_name_verified_at, \
                      p.real_name_method, p.real_name_verified_by, p.version, p.password_expires_at, \
                      p.password_must_change";

impl Db {
    pub async fn insert_person(&self, p: &PersonRow, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO persons (id, id_number_hash, id_number_enc, name, phone, password_hash, \
             real_name_level, status, created_at, updated_at, phone_verified) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$9,$10)",
        )
        .bind(&p.id)
        .bind(&p.id_number_hash)
        .bind(&p.id_number_enc)
        .bind(&p.name)
        .bind(&p.phone)
        .bind(&p.password_hash)
        .bind(p.real_name_level)
        .bind(p.status.as_str())
        .bind(now)
        .bind(i64::from(p.phone_verified))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn person(&self, id: &str) -> Result<Option<PersonRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1"));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn person_by_id_hash(&self, hash: &str) -> Result<Option<PersonRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE id_number_hash = $1"));
        let row = sqlx::query(sql).bind(hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Persons with exactly this name (names are not unique), at most `limit`.
    pub async fn persons_by_name(&self, name: &str, limit: i64) -> Result<Vec<PersonRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE name = $1 ORDER BY id LIMIT $2"));
        let rows = sqlx::query(sql)
            .bind(name)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn person_by_phone(&self, phone: &str) -> Result<Option<PersonRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE phone = $1"));
        let row = sqlx::query(sql).bind(phone).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records a failed login against `key` (an account or an address).
    pub async fn record_login_failure(&self, key: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Failures recorded against `key` since `since`: how many, and the latest.
    pub async fn login_failures(&self, key: &str, since: i64) -> Result<(i64, Option<i64>), sqlx::Error> {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(at) AS last FROM login_failures WHERE key = $1 AND at >= $2",
        )
        .bind(key)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("last")?))
    }

    pub async fn clear_login_failures(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Db {
    /// Records a real-name verification (level 2 online against an authority, 3 in person at a counter).
    pub async fn set_real_name(
        &self,
        person_id: &str,
        level: i64,
        method: &str,
        by: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE persons SET real_name_level = $1, real_name_method = $2, real_name_verified_by = $3, \
             real_name_verified_at = $4, updated_at = $4, version = version + 1 WHERE id = $5",
        )
        .bind(level)
        .bind(method)
        .bind(by)
        .bind(now)
        .bind(person_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// An admin's edit of a person's name and phone.
pub struct PersonEdit<'a> {
    pub name: &'a str,
    pub phone: Option<&'a str>,
    pub phone_verified: bool,
}

impl Db {
    /// Applies an edit if the person is still at `version`; false when it changed meanwhile (or is gone).
    pub async fn edit_person(
        &self,
        id: &str,
        version: i64,
        edit: &PersonEdit<'_>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE persons SET name = $1, phone = $2, phone_verified = $3, updated_at = $4, \
             version = version + 1 WHERE id = $5 AND version = $6",
        )
        .bind(edit.name)
        .bind(edit.phone)
        .bind(i64::from(edit.phone_verified))
        .bind(now)
        .bind(id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets the account status.
    pub async fn set_person_status(
        &self,
        id: &str,
        status: PersonStatus,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE persons SET status = $1, updated_at = $2, version = version + 1 WHERE id = $3",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the password hash; a temporary one carries its expiry and must be changed at sign-in.
    pub async fn set_password(
        &self,
        id: &str,
        hash: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE persons SET password_hash = $1, password_expires_at = $2, password_must_change = $3, \
             updated_at = $4, version = version + 1 WHERE id = $5",
        )
        .bind(hash)
        .bind(expires_at)
        .bind(i64::from(expires_at.is_some()))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
