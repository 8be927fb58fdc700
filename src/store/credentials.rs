//! What "who may act on whom" reads about a person (admin roles, who set the lock), status changes that
//! remember who made them, and removing every passkey of a person at once (a counter password reset).

use sqlx::Row;

use super::Db;
use super::persons::PersonStatus;

/// A person's standing as the admin rule sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The stored admin roles (role, department).
    pub roles: Vec<(String, String)>,
    /// The lock or disabling was set by a super admin.
    pub locked_by_super: bool,
}

impl Db {
    pub async fn standing(&self, person_id: &str) -> Result<Standing, sqlx::Error> {
        let roles = self.admin_roles_of(person_id).await?;
        let locked_by_super: Option<i64> =
            sqlx::query_scalar("SELECT locked_by_super FROM persons WHERE id = $1")
                .bind(person_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(Standing {
            roles,
            locked_by_super: locked_by_super.unwrap_or(0) != 0,
        })
    }

    /// Sets the account status and whether a super admin set it; back to active, the mark goes too.
    pub async fn set_person_status_by(
        &self,
        id: &str,
        status: PersonStatus,
        by_super: bool,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mark = i64::from(by_super && !status.is_active());
        let done = sqlx::query(
            "UPDATE persons SET status = $1, locked_by_super = $2, updated_at = $3, version = version + 1 \
             WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(mark)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes every passkey of a person; returns how many there were.
    pub async fn delete_passkeys_of(&self, person_id: &str) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM passkeys WHERE person_id = $1")
            .bind(person_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many passkeys a person has.
    pub async fn passkey_count(&self, person_id: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM passkeys WHERE person_id = $1")
            .bind(person_id)
            .fetch_one(&self.pool)
            .await?;
        row.try_get("n")
    }
}
