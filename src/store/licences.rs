//! E-licence records, the licence type catalogue, and which types each app may receive.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::Db;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LicenceType {
    pub code: String,
    pub name: String,
    pub authority: String,
    /// `person` or `org`.
    pub holder_kind: String,
    /// Surface fields that may be released to apps.
    pub released_fields: Vec<String>,
}

/// A licence's status, as GB/T 36903 codes it (`licences.status`, stored as the two-digit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenceStatus {
    /// `01`: valid, the only status ever released to apps.
    Valid,
    /// `02`
    Suspended,
    /// `03`
    Withdrawn,
    /// `04`
    Cancelled,
    /// `05`
    Expired,
    /// `07`
    Revoked,
    /// `99`
    Other,
}

impl LicenceStatus {
    pub const ALL: [LicenceStatus; 7] = [
        LicenceStatus::Valid,
        LicenceStatus::Suspended,
        LicenceStatus::Withdrawn,
        LicenceStatus::Cancelled,
        LicenceStatus::Expired,
        LicenceStatus::Revoked,
        LicenceStatus::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            LicenceStatus::Valid => "01",
            LicenceStatus::Suspended => "02",
            LicenceStatus::Withdrawn => "03",
            LicenceStatus::Cancelled => "04",
            LicenceStatus::Expired => "05",
            LicenceStatus::Revoked => "07",
            LicenceStatus::Other => "99",
        }
    }

    pub fn parse(code: &str) -> Option<LicenceStatus> {
        LicenceStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// A code yunid never writes reads as `Other`: not valid, so never released, until the library
    /// sends the licence again.
    fn read(stored: &str) -> LicenceStatus {
        LicenceStatus::parse(stored).unwrap_or_else(|| {
            tracing::warn!(status = %stored, "a licence has a status yunid does not know; treated as 99 (other)");
            LicenceStatus::Other
        })
    }
}

/// Shown and audited as its code (`"01"`), as the licence library sends it.
impl serde::Serialize for LicenceStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// A stored licence. The holder code (an ID number for persons) is kept encrypted and found by its keyed hash.
#[derive(Debug, Clone)]
pub struct LicenceRow {
    pub id: String,
    pub type_code: String,
    pub number: String,
    pub issuer_name: String,
    pub issuer_code: String,
    pub holder_name: String,
    pub holder_code_type: String,
    pub holder_code_hash: String,
    pub holder_code_enc: String,
    pub issued_on: String,
    pub valid_from: String,
    pub valid_until: Option<String>,
    pub area_code: String,
    pub status: LicenceStatus,
    pub surface: String,
    pub source: String,
}

fn licence_from_row(r: &AnyRow) -> Result<LicenceRow, sqlx::Error> {
    Ok(LicenceRow {
        id: r.try_get("id")?,
        type_code: r.try_get("type_code")?,
        number: r.try_get("number")?,
        issuer_name: r.try_get("issuer_name")?,
        issuer_code: r.try_get("issuer_code")?,
        holder_name: r.try_get("holder_name")?,
        holder_code_type: r.try_get("holder_code_type")?,
        holder_code_hash: r.try_get("holder_code_hash")?,
        holder_code_enc: r.try_get("holder_code_enc")?,
        issued_on: r.try_get("issued_on")?,
        valid_from: r.try_get("valid_from")?,
        valid_until: r.try_get("valid_until")?,
        area_code: r.try_get("area_code")?,
        status: LicenceStatus::read(&r.try_get::<String, _>("status")?),
        surface: r.try_get("surface")?,
        source: r.try_get("source")?,
    })
}

const LICENCE_COLUMNS: &str = "id, type_code, number, issuer_name, issuer_code, holder_name, holder_code_type, \
     holder_code_hash, holder_code_enc, issued_on, valid_from, valid_until, area_code, status, surface, source";

/// Inserts or replaces a licence by identifier (imports are idempotent). Works inside a transaction.
pub async fn upsert_licence<'e, E>(e: E, l: &LicenceRow, now: i64) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO licences (id, type_code, number, issuer_name, issuer_code, holder_name, holder_code_type, \
         holder_code_hash, holder_code_enc, issued_on, valid_from, valid_until, area_code, status, surface, source, \
         created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$17) \
         ON CONFLICT (id) DO UPDATE SET type_code = excluded.type_code, number = excluded.number, \
         issuer_name = excluded.issuer_name, issuer_code = excluded.issuer_code, holder_name = excluded.holder_name, \
         holder_code_type = excluded.holder_code_type, holder_code_hash = excluded.holder_code_hash, \
         holder_code_enc = excluded.holder_code_enc, issued_on = excluded.issued_on, \
         valid_from = excluded.valid_from, valid_until = excluded.valid_until, area_code = excluded.area_code, \
         status = excluded.status, surface = excluded.surface, source = excluded.source, \
         updated_at = excluded.updated_at",
    )
    .bind(&l.id)
    .bind(&l.type_code)
    .bind(&l.number)
    .bind(&l.issuer_name)
    .bind(&l.issuer_code)
    .bind(&l.holder_name)
    .bind(&l.holder_code_type)
    .bind(&l.holder_code_hash)
    .bind(&l.holder_code_enc)
    .bind(&l.issued_on)
    .bind(&l.valid_from)
    .bind(&l.valid_until)
    .bind(&l.area_code)
    .bind(l.status.code())
    .bind(&l.surface)
    .bind(&l.source)
    .bind(now)
    .execute(e)
    .await?;
    Ok(())
}

impl Db {
    pub async fn upsert_licence_type(&self, t: &LicenceType, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO licence_types (code, name, authority, holder_kind, released_fields, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (code) DO UPDATE SET name = excluded.name, \
             authority = excluded.authority, holder_kind = excluded.holder_kind, \
             released_fields = excluded.released_fields",
        )
        .bind(&t.code)
        .bind(&t.name)
        .bind(&t.authority)
        .bind(&t.holder_kind)
        .bind(serde_json::to_string(&t.released_fields).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn licence_type(&self, code: &str) -> Result<Option<LicenceType>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT code, name, authority, holder_kind, released_fields FROM licence_types WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let fields: String = r.try_get("released_fields")?;
            Ok(LicenceType {
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                authority: r.try_get("authority")?,
                holder_kind: r.try_get("holder_kind")?,
                released_fields: serde_json::from_str(&fields)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            })
        })
        .transpose()
    }

    pub async fn licence(&self, id: &str) -> Result<Option<LicenceRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {LICENCE_COLUMNS} FROM licences WHERE id = $1"));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(licence_from_row).transpose()
    }

    pub async fn licences_of_holder(&self, holder_code_hash: &str) -> Result<Vec<LicenceRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {LICENCE_COLUMNS} FROM licences WHERE holder_code_hash = $1 ORDER BY type_code, id"
        ));
        let rows = sqlx::query(sql)
            .bind(holder_code_hash)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(licence_from_row).collect()
    }

    pub async fn set_licence_status(
        &self,
        id: &str,
        status: LicenceStatus,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE licences SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.code())
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn allow_licence_type(&self, client_id: &str, type_code: &str) -> Result<(), sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO client_licence_types (client_id, type_code) VALUES ($1,$2) \
             ON CONFLICT (client_id, type_code) DO NOTHING",
        )
        .bind(client_id)
        .bind(type_code)
        .execute(&self.pool)
        .await?;
        // The app's settings changed: its admin API version (ETag) moves on.
        if done.rows_affected() > 0 {
            let update =
                sqlx::query("UPDATE clients SET version = version + 1 WHERE id = $1").bind(client_id);
            self.change_client(client_id, update).await?;
        }
        Ok(())
    }

    pub async fn allowed_licence_types(&self, client_id: &str) -> Result<Vec<LicenceType>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT t.code, t.name, t.authority, t.holder_kind, t.released_fields FROM client_licence_types c \
             JOIN licence_types t ON t.code = c.type_code WHERE c.client_id = $1 ORDER BY t.code",
        )
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let fields: String = r.try_get("released_fields")?;
                Ok(LicenceType {
                    code: r.try_get("code")?,
                    name: r.try_get("name")?,
                    authority: r.try_get("authority")?,
                    holder_kind: r.try_get("holder_kind")?,
                    released_fields: serde_json::from_str(&fields)
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                })
            })
            .collect()
    }

    /// When a holder's licences were last pulled from the upstream library.
    pub async fn licence_fetched_at(&self, holder_code_hash: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT fetched_at FROM licence_fetches WHERE holder_code_hash = $1")
            .bind(holder_code_hash)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn set_licence_fetched(&self, holder_code_hash: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO licence_fetches (holder_code_hash, fetched_at) VALUES ($1,$2) \
             ON CONFLICT (holder_code_hash) DO UPDATE SET fetched_at = excluded.fetched_at",
        )
        .bind(holder_code_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
