//! Organisations (legal persons) and representations (a person acting for an organisation).

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;

#[derive(Debug, Clone)]
pub struct Organisation {
    pub id: String,
    pub credit_code: String,
    pub name: String,
    pub org_type: String,
    pub status: OrgStatus,
    /// Bumped by every edit; the admin API's ETag.
    pub version: i64,
}

/// An organisation's status (`organisations.status`): set by an admin (`active`, `inactive`) or by the
/// legal-person registry's answer (`revoked`, `cancelled`, `gone`). Only an active one is acted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgStatus {
    Active,
    /// Deactivated by an admin.
    Inactive,
    /// The registry reported the enterprise's licence revoked (吊销).
    Revoked,
    /// The registry reported the enterprise cancelled (注销).
    Cancelled,
    /// The registry no longer knows the enterprise.
    Gone,
}

impl OrgStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgStatus::Active => "active",
            OrgStatus::Inactive => "inactive",
            OrgStatus::Revoked => "revoked",
            OrgStatus::Cancelled => "cancelled",
            OrgStatus::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<OrgStatus> {
        [
            OrgStatus::Active,
            OrgStatus::Inactive,
            OrgStatus::Revoked,
            OrgStatus::Cancelled,
            OrgStatus::Gone,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// A status only the registry's answer sets (an admin does not lift it, a super admin overrides it).
    pub fn is_registrys(self) -> bool {
        matches!(self, OrgStatus::Revoked | OrgStatus::Cancelled | OrgStatus::Gone)
    }

    /// A value yunid never writes reads as `Inactive`: nobody acts for that organisation (the SQL that
    /// lists representations in force already reads only `active` ones) until an admin sets it right.
    fn read(stored: &str) -> OrgStatus {
        OrgStatus::parse(stored).unwrap_or_else(|| {
            tracing::warn!(status = %stored, "an organisation has a status yunid does not know; treated as inactive");
            OrgStatus::Inactive
        })
    }
}

impl std::fmt::Display for OrgStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    LegalRepresentative,
    Manager,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::LegalRepresentative => "legal_representative",
            Role::Manager => "manager",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::LegalRepresentative, Role::Manager, Role::Agent]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Legal representatives and managers may appoint agents; agents may appoint no one.
    pub fn may_appoint(self) -> bool {
        matches!(self, Role::LegalRepresentative | Role::Manager)
    }
}

/// The matters (service item codes) a representation covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Matters {
    /// Stored as the string `"all"`.
    All(AllMarker),
    Only(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    All,
}

impl Matters {
    pub fn all() -> Matters {
        Matters::All(AllMarker::All)
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Matters::All(_))
    }

    /// Whether these matters include every one of `wanted` (`All` includes everything).
    pub fn covers(&self, wanted: &[String]) -> bool {
        match self {
            Matters::All(_) => true,
            Matters::Only(list) => !wanted.is_empty() && wanted.iter().all(|w| list.contains(w)),
        }
    }

    /// Whether these matters are within `outer` (an appointee gets no more than the appointer has).
    pub fn within(&self, outer: &Matters) -> bool {
        match (self, outer) {
            (_, Matters::All(_)) => true,
            (Matters::All(_), Matters::Only(_)) => false,
            (Matters::Only(inner), Matters::Only(outer)) => inner.iter().all(|m| outer.contains(m)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Representation {
    pub id: String,
    pub person_id: String,
    pub org_id: String,
    pub role: Role,
    pub matters: Matters,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub granted_by: String,
    pub revoked_at: Option<i64>,
    pub version: i64,
    /// For an agent a legal representative or manager appointed: the appointer's representation, on
    /// which the agent's authority depends for as long as it lasts.
    pub appointed_under: Option<String>,
}

/// What a representation's authority stands on beyond its own row (see [`Db::rep_standing`]).
#[derive(Debug, Clone)]
pub struct Standing {
    pub holder_status: super::persons::PersonStatus,
    pub holder_level: i64,
    /// Made online: bound on `/account/organisations` (an `org_bindings` row) or accepted from an
    /// appointment there (an admin's record, even one from the registry, is not).
    pub online: bool,
    /// Accepted from an appointment on `/account/organisations` (an `org_appointments` row): the
    /// appointer is held to level 2 as long as it lasts.
    pub appointed_online: bool,
    /// A binding of this representation is suspended (by the registry or an admin).
    pub binding_held: bool,
}

impl Representation {
    pub fn is_current(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.valid_from <= now && self.valid_until.is_none_or(|u| now < u)
    }
}

fn org_from_row(row: &AnyRow) -> Result<Organisation, sqlx::Error> {
    Ok(Organisation {
        id: row.try_get("id")?,
        credit_code: row.try_get("credit_code")?,
        name: row.try_get("name")?,
        org_type: row.try_get("org_type")?,
        status: OrgStatus::read(&row.try_get::<String, _>("status")?),
        version: row.try_get("version")?,
    })
}

fn rep_from_row(row: &AnyRow) -> Result<Representation, sqlx::Error> {
    let role: String = row.try_get("role")?;
    let matters: String = row.try_get("matters")?;
    Ok(Representation {
        id: row.try_get("id")?,
        person_id: row.try_get("person_id")?,
        org_id: row.try_get("org_id")?,
        role: Role::parse(&role).ok_or_else(|| sqlx::Error::Decode(format!("bad role {role}").into()))?,
        matters: serde_json::from_str(&matters).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        granted_by: row.try_get("granted_by")?,
        revoked_at: row.try_get("revoked_at")?,
        version: row.try_get("version")?,
        appointed_under: row.try_get("appointed_under")?,
    })
}

fn insert_rep_query(
    r: &Representation,
    now: i64,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO representations (id, person_id, org_id, role, matters, valid_from, valid_until, granted_by, \
         created_at, appointed_under) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
    )
    .bind(&r.id)
    .bind(&r.person_id)
    .bind(&r.org_id)
    .bind(r.role.as_str())
    .bind(serde_json::to_string(&r.matters).unwrap_or_else(|_| "[]".into()))
    .bind(r.valid_from)
    .bind(r.valid_until)
    .bind(&r.granted_by)
    .bind(now)
    .bind(&r.appointed_under)
}

const REP_COLUMNS: &str = "r.id, r.person_id, r.org_id, r.role, r.matters, r.valid_from, r.valid_until, r.granted_by, r.revoked_at, r.version, r.appointed_under";

impl Db {
    pub async fn insert_org(&self, o: &Organisation, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO organisations (id, credit_code, name, org_type, status, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$6)",
        )
        .bind(&o.id)
        .bind(&o.credit_code)
        .bind(&o.name)
        .bind(&o.org_type)
        .bind(o.status.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn org(&self, id: &str) -> Result<Option<Organisation>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, credit_code, name, org_type, status, version FROM organisations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    pub async fn org_by_code(&self, code: &str) -> Result<Option<Organisation>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, credit_code, name, org_type, status, version FROM organisations WHERE credit_code = $1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    pub async fn allow_credit_code(&self, code: &str, by: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO credit_code_allowlist (code, added_by, created_at) VALUES ($1,$2,$3) \
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(code)
        .bind(by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn credit_code_allowed(&self, code: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credit_code_allowlist WHERE code = $1")
            .bind(code)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    pub async fn insert_rep(&self, r: &Representation, now: i64) -> Result<(), sqlx::Error> {
        insert_rep_query(r, now).execute(&self.pool).await?;
        Ok(())
    }

    /// Accepts a pending appointment and records the representation it makes, in one transaction:
    /// the representation exists only with the appointment pointing at it (`rep_id`). False, and
    /// nothing recorded, when the appointment is no longer pending.
    pub async fn accept_appointment(
        &self,
        appointment_id: &str,
        r: &Representation,
        by: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        insert_rep_query(r, now).execute(&mut *tx).await?;
        let done = sqlx::query(
            "UPDATE org_appointments SET status = 'accepted', rep_id = $1, decided_at = $2, ended_by = $3 \
             WHERE id = $4 AND status = 'pending'",
        )
        .bind(&r.id)
        .bind(now)
        .bind(by)
        .bind(appointment_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn rep(&self, id: &str) -> Result<Option<Representation>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {REP_COLUMNS} FROM representations r WHERE r.id = $1"
        ));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(rep_from_row).transpose()
    }

    /// A person's current representations of active organisations, with the organisations. A
    /// representation whose binding (`org_bindings`) is not active is not current, whatever the
    /// organisation's status: a registry suspension rests on the binding, so an admin setting the
    /// organisation active again does not revive it.
    pub async fn current_reps(
        &self,
        person_id: &str,
        now: i64,
    ) -> Result<Vec<(Representation, Organisation)>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {REP_COLUMNS}, o.credit_code, o.name, o.org_type, o.status, o.version AS org_version \
             FROM representations r \
             JOIN organisations o ON o.id = r.org_id \
             WHERE r.person_id = $1 AND r.revoked_at IS NULL AND r.valid_from <= $2 \
             AND (r.valid_until IS NULL OR r.valid_until > $2) AND o.status = 'active' \
             AND NOT EXISTS (SELECT 1 FROM org_bindings b WHERE b.rep_id = r.id AND b.status <> 'active') \
             ORDER BY o.name"
        ));
        let rows = sqlx::query(sql)
            .bind(person_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let rep = rep_from_row(row)?;
                let org = Organisation {
                    id: rep.org_id.clone(),
                    credit_code: row.try_get("credit_code")?,
                    name: row.try_get("name")?,
                    org_type: row.try_get("org_type")?,
                    status: OrgStatus::read(&row.try_get::<String, _>("status")?),
                    version: row.try_get("org_version")?,
                };
                Ok((rep, org))
            })
            .collect()
    }

    /// What a representation's authority stands on beyond its own row: its holder's account status
    /// and real-name level, whether it was made online (bound on the account page, or accepted from an
    /// appointment there), and whether a binding of it is not active. None for no such representation.
    pub async fn rep_standing(&self, id: &str) -> Result<Option<Standing>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT p.status, p.real_name_level, \
             (SELECT COUNT(*) FROM org_appointments a WHERE a.rep_id = r.id) AS appointed, \
             (SELECT COUNT(*) FROM org_bindings b WHERE b.rep_id = r.id) AS bound, \
             (SELECT COUNT(*) FROM org_bindings b WHERE b.rep_id = r.id AND b.status <> 'active') AS held \
             FROM representations r JOIN persons p ON p.id = r.person_id WHERE r.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let appointed: i64 = row.try_get("appointed")?;
        let bound: i64 = row.try_get("bound")?;
        let held: i64 = row.try_get("held")?;
        Ok(Some(Standing {
            holder_status: super::persons::status_of(&row)?,
            holder_level: row.try_get("real_name_level")?,
            online: bound > 0 || appointed > 0,
            appointed_online: appointed > 0,
            binding_held: held > 0,
        }))
    }

    pub async fn revoke_rep(&self, id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE representations SET revoked_at = $1, version = version + 1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Db {
    /// An organisation's representations that were not revoked (current, future and lapsed), oldest first.
    pub async fn live_reps_of_org(&self, org_id: &str) -> Result<Vec<Representation>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {REP_COLUMNS} FROM representations r WHERE r.org_id = $1 AND r.revoked_at IS NULL \
             ORDER BY r.valid_from, r.id"
        ));
        let rows = sqlx::query(sql).bind(org_id).fetch_all(&self.pool).await?;
        rows.iter().map(rep_from_row).collect()
    }

    /// Organisations by name, a page at a time.
    pub async fn orgs(&self, limit: i64, offset: i64) -> Result<Vec<Organisation>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, credit_code, name, org_type, status, version FROM organisations \
             ORDER BY name, id LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    /// Applies an edit if the organisation is still at `version`.
    pub async fn edit_org(&self, o: &Organisation, version: i64, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE organisations SET name = $1, org_type = $2, status = $3, updated_at = $4, \
             version = version + 1 WHERE id = $5 AND version = $6",
        )
        .bind(&o.name)
        .bind(&o.org_type)
        .bind(o.status.as_str())
        .bind(now)
        .bind(&o.id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every representation of an organisation, revoked and expired ones included.
    pub async fn reps_of_org(&self, org_id: &str) -> Result<Vec<Representation>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {REP_COLUMNS} FROM representations r WHERE r.org_id = $1 ORDER BY r.id"
        ));
        let rows = sqlx::query(sql).bind(org_id).fetch_all(&self.pool).await?;
        rows.iter().map(rep_from_row).collect()
    }

    /// Changes a live representation's role, matters and validity if it is still at `version`.
    pub async fn edit_rep(&self, r: &Representation, version: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE representations SET role = $1, matters = $2, valid_from = $3, valid_until = $4, \
             version = version + 1 WHERE id = $5 AND version = $6 AND revoked_at IS NULL",
        )
        .bind(r.role.as_str())
        .bind(serde_json::to_string(&r.matters).unwrap_or_else(|_| "[]".into()))
        .bind(r.valid_from)
        .bind(r.valid_until)
        .bind(&r.id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes a representation if it is still at `version` and not yet revoked.
    pub async fn revoke_rep_at(&self, id: &str, version: i64, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE representations SET revoked_at = $1, version = version + 1 \
             WHERE id = $2 AND version = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
