//! One electronic licence record as the licence library sends it, and its complete check: shared by the
//! admin API and imports (`licence`) and the upstream pull (`licence_upstream`), below both.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::Secrets;
use crate::identity::{LicenceId, LicenceIdError, ResidentId};
use crate::services::identity as orgs;
use crate::store::Db;
use crate::store::licences::{LicenceRow, LicenceStatus};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    pub name: String,
    /// The issuing authority's unified social credit code.
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub name: String,
    pub code: String,
    /// `111` resident identity number, `001` unified social credit code.
    pub code_type: String,
}

/// One licence as the library sends it (admin API, JSON Lines import, upstream pull).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceInput {
    pub id: String,
    pub type_code: String,
    pub number: String,
    pub issuer: Issuer,
    pub holder: Holder,
    pub issued_on: String,
    pub valid_from: String,
    /// `None` (or absent) for a long-term licence.
    #[serde(default)]
    pub valid_until: Option<String>,
    pub area_code: String,
    pub status: String,
    #[serde(default)]
    pub surface: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum LicenceError {
    #[error("identifier: {0}")]
    Id(LicenceIdError),
    #[error("type_code {0} is not in the licence type catalogue")]
    UnknownType(String),
    #[error("type_code does not match the identifier's type code")]
    TypeMismatch,
    #[error("holder.code: {0}")]
    HolderCode(String),
    #[error(
        "holder.code_type must be 111 (resident ID number) or 001 (credit code) and match the licence type"
    )]
    HolderType,
    #[error("no person or organisation with this holder code is registered")]
    NoHolder,
    #[error("{0}")]
    Dates(&'static str),
    #[error("status must be one of 01, 02, 03, 04, 05, 07, 99")]
    Status,
    #[error("area_code must be a 6-digit GB/T 2260 code")]
    Area,
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("issuer.code: {0}")]
    IssuerCode(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for LicenceError {
    fn from(e: sqlx::Error) -> Self {
        LicenceError::Internal(e.into())
    }
}

fn date(s: &str, field: &'static str) -> Result<NaiveDate, LicenceError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| LicenceError::Dates(field))
}

/// The keyed hash a holder is found by (the holder code of a person is an ID number: never stored plain).
pub fn holder_hash(secrets: &Secrets, code_type: &str, code: &str) -> String {
    secrets.id_hash(&format!("holder:{code_type}:{code}"))
}

/// Checks a record completely; nothing is written.
pub async fn validate(
    db: &Db,
    secrets: &Secrets,
    input: &LicenceInput,
    source: &str,
) -> Result<LicenceRow, LicenceError> {
    let id = LicenceId::parse(&input.id).map_err(LicenceError::Id)?;
    let ty = db
        .licence_type(&input.type_code)
        .await?
        .ok_or_else(|| LicenceError::UnknownType(input.type_code.clone()))?;
    if id.type_code() != ty.code {
        return Err(LicenceError::TypeMismatch);
    }
    for (value, name) in [
        (&input.number, "number"),
        (&input.issuer.name, "issuer.name"),
        (&input.holder.name, "holder.name"),
    ] {
        if value.trim().is_empty() {
            return Err(LicenceError::Empty(name));
        }
    }
    orgs::credit_code(db, &input.issuer.code)
        .await
        .map_err(|e| LicenceError::IssuerCode(e.to_string()))?;
    let holder_code = match (input.holder.code_type.as_str(), ty.holder_kind.as_str()) {
        ("111", "person") => {
            let rid =
                ResidentId::parse(&input.holder.code).map_err(|e| LicenceError::HolderCode(e.to_string()))?;
            let known = db.person_by_id_hash(&secrets.id_hash(rid.as_str())).await?;
            known.ok_or(LicenceError::NoHolder)?;
            rid.as_str().to_owned()
        }
        ("001", "org") => {
            let code = orgs::credit_code(db, &input.holder.code)
                .await
                .map_err(|e| LicenceError::HolderCode(e.to_string()))?;
            db.org_by_code(code.as_str())
                .await?
                .ok_or(LicenceError::NoHolder)?;
            code.as_str().to_owned()
        }
        _ => return Err(LicenceError::HolderType),
    };
    let issued = date(&input.issued_on, "issued_on must be a date YYYY-MM-DD")?;
    let from = date(&input.valid_from, "valid_from must be a date YYYY-MM-DD")?;
    let until = match input.valid_until.as_deref() {
        None | Some("") | Some("long-term") => None,
        Some(u) => Some(date(
            u,
            "valid_until must be a date YYYY-MM-DD (or absent for long-term)",
        )?),
    };
    if let Some(until) = until {
        if until <= from {
            return Err(LicenceError::Dates("valid_until must be after valid_from"));
        }
        if until < issued {
            return Err(LicenceError::Dates("valid_until must not be before issued_on"));
        }
    }
    let status = LicenceStatus::parse(&input.status).ok_or(LicenceError::Status)?;
    if input.area_code.len() != 6 || !input.area_code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LicenceError::Area);
    }
    Ok(LicenceRow {
        id: id.as_str().to_owned(),
        type_code: ty.code,
        number: input.number.trim().to_owned(),
        issuer_name: input.issuer.name.trim().to_owned(),
        issuer_code: input.issuer.code.trim().to_ascii_uppercase(),
        holder_name: input.holder.name.trim().to_owned(),
        holder_code_type: input.holder.code_type.clone(),
        holder_code_hash: holder_hash(secrets, &input.holder.code_type, &holder_code),
        holder_code_enc: secrets.encrypt(&holder_code, id.as_str().as_bytes())?,
        issued_on: issued.to_string(),
        valid_from: from.to_string(),
        valid_until: until.map(|u| u.to_string()),
        area_code: input.area_code.clone(),
        status,
        surface: Value::Object(input.surface.clone()).to_string(),
        source: source.to_owned(),
    })
}
