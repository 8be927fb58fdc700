//! E-licences: validating records pushed by the e-licence library (or pulled from it), and releasing a
//! holder's currently valid licences to an app as OIDC4IDA `verified_claims` (evidence type
//! `electronic_record`), only for licence types the admin allowed the app and the person consented to.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::crypto::Secrets;
use crate::scope::ScopeSet;
use crate::services::licence_upstream::{self, Upstream};
use crate::services::oidc::claims::{GrantSubject, TRUST_FRAMEWORK};
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::licences::{LicenceRow, LicenceStatus, LicenceType, upsert_licence};

pub use crate::services::licence_record::{
    Holder, Issuer, LicenceError, LicenceInput, holder_hash, validate,
};

/// Validates and stores one licence (idempotent by identifier).
pub async fn push(
    db: &Db,
    secrets: &Secrets,
    input: &LicenceInput,
    source: &str,
    now: i64,
) -> Result<LicenceRow, LicenceError> {
    let row = validate(db, secrets, input, source).await?;
    upsert_licence(&db.pool, &row, now).await?;
    Ok(row)
}

/// The outcome of a bulk import: how many lines went in, and each bad line's number and reason.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    /// The identifiers of the licences written.
    pub ids: Vec<String>,
    pub errors: Vec<(usize, String)>,
}

/// Imports JSON Lines: good lines go in, bad ones are reported by line number. With `atomic`, any bad
/// line means nothing is written.
pub async fn import(
    db: &Db,
    secrets: &Secrets,
    text: &str,
    atomic: bool,
    now: i64,
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let input: LicenceInput = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                report.errors.push((n, format!("not a licence record: {e}")));
                continue;
            }
        };
        match validate(db, secrets, &input, "import").await {
            Ok(row) => rows.push(row),
            Err(LicenceError::Internal(e)) => return Err(e),
            Err(e) => report.errors.push((n, e.to_string())),
        }
    }
    if atomic && !report.errors.is_empty() {
        return Ok(report);
    }
    let mut tx = db.pool.begin().await?;
    for row in &rows {
        upsert_licence(&mut *tx, row, now).await?;
    }
    tx.commit().await?;
    report.imported = rows.len();
    report.ids = rows.into_iter().map(|r| r.id).collect();
    Ok(report)
}

/// Licence types an authorization asks for: all types the app may receive with the `licences` scope,
/// or those named in the claims request's `verified_claims` electronic_record `record.type`.
pub async fn requested_types(
    db: &Db,
    client: &Client,
    scopes: &ScopeSet,
    claims: Option<&Value>,
) -> anyhow::Result<Vec<LicenceType>> {
    if scopes.contains("licences") {
        return Ok(db.allowed_licence_types(&client.id).await?);
    }
    let mut named = Vec::new();
    for member in ["userinfo", "id_token"] {
        named.extend(named_types(claims, member));
    }
    if named.is_empty() {
        // Nothing asked for: no need to read what the app may receive (most authorizations).
        return Ok(Vec::new());
    }
    let allowed = db.allowed_licence_types(&client.id).await?;
    Ok(allowed.into_iter().filter(|t| named.contains(&t.code)).collect())
}

/// Whether the claims request asks for `verified_claims` in `member` (`userinfo` or `id_token`).
pub fn asks_verified_claims(claims: Option<&Value>, member: &str) -> bool {
    claims
        .and_then(|c| c.get(member))
        .and_then(|m| m.get("verified_claims"))
        .is_some()
}

/// Licence type codes named in `member` of the claims request (`record.type` of electronic_record evidence).
fn named_types(claims: Option<&Value>, member: &str) -> Vec<String> {
    let vc = claims
        .and_then(|c| c.get(member))
        .and_then(|m| m.get("verified_claims"));
    let items = match vc {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    let mut named = Vec::new();
    for item in items {
        let evidence = item
            .pointer("/verification/evidence")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for e in evidence {
            let values: Vec<String> = match e.pointer("/record/type") {
                Some(Value::Object(o)) => o
                    .get("value")
                    .map(|v| vec![v.clone()])
                    .or_else(|| o.get("values").and_then(Value::as_array).cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            };
            named.extend(values);
        }
    }
    named
}

/// What one token or userinfo answer may carry of a grant's licences, decided on each call from the
/// effective scopes (asked now, still allowed the app), never from the grant alone.
pub struct Release<'a> {
    /// The licence types the person consented to for this grant (space-separated).
    pub consented: &'a str,
    /// The effective scopes of this call.
    pub scopes: &'a ScopeSet,
    pub claims: Option<&'a Value>,
    /// `userinfo` or `id_token`.
    pub member: &'a str,
}

impl Release<'_> {
    /// The consented types this call still asks for: all of them while the `licences` scope counts,
    /// else those the claims request names for this member.
    fn wanted(&self, client: &Client) -> Vec<&str> {
        let consented = self.consented.split(' ').filter(|s| !s.is_empty());
        if self.member == "id_token" && !asks_verified_claims(self.claims, "id_token") {
            return Vec::new();
        }
        let by_scope = self.scopes.contains("licences") && client.allows_scope("licences");
        if by_scope {
            return consented.collect();
        }
        let named = named_types(self.claims, self.member);
        consented.filter(|c| named.iter().any(|n| n == c)).collect()
    }

    /// The holder's resident ID number goes out (as `personal_number`) only under the `identity` scope,
    /// the one whose consent line names the ID number.
    fn shows_id_number(&self, client: &Client) -> bool {
        self.scopes.contains("identity") && client.allows_scope("identity")
    }
}

/// Today in China Standard Time.
fn today(now: i64) -> String {
    chrono::DateTime::from_timestamp(now + 8 * 3600, 0)
        .map(|d| d.date_naive().to_string())
        .unwrap_or_default()
}

/// The `verified_claims` elements for the grant's holder, now: only types still allowed and consented,
/// only licences that are valid at this moment. The upstream library is asked first when configured
/// and the holder's cache is stale; if it fails, the local records are used and the failure is logged.
pub async fn release(
    up: &Upstream<'_>,
    client: &Client,
    asked: &Release<'_>,
    subject: &GrantSubject,
    now: i64,
) -> anyhow::Result<Vec<Value>> {
    let wanted = asked.wanted(client);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let types: Vec<LicenceType> = up
        .db
        .allowed_licence_types(&client.id)
        .await?
        .into_iter()
        .filter(|t| wanted.contains(&t.code.as_str()))
        .collect();
    let (code_type, code) = match &subject.acting {
        Some((_, org)) => ("001", org.credit_code.clone()),
        None => {
            let plain = up
                .secrets
                .decrypt(&subject.person.id_number_enc, subject.person.id.as_bytes())?;
            ("111", plain)
        }
    };
    let hash = holder_hash(up.secrets, code_type, &code);
    licence_upstream::refresh(up, code_type, &code, &hash, now).await;
    let today = today(now);
    let mut out = Vec::new();
    for l in up.db.licences_of_holder(&hash).await? {
        let Some(ty) = types.iter().find(|t| t.code == l.type_code) else {
            continue;
        };
        let current = l.status == LicenceStatus::Valid
            && l.valid_from <= today
            && l.valid_until.as_deref().is_none_or(|u| today.as_str() <= u);
        if !current {
            continue;
        }
        out.push(element(up.secrets, &l, ty, asked.shows_id_number(client))?);
    }
    Ok(out)
}

fn element(secrets: &Secrets, l: &LicenceRow, ty: &LicenceType, id_number: bool) -> anyhow::Result<Value> {
    let mut record = json!({
        "type": l.type_code,
        "created_at": l.issued_on,
        "source": { "name": l.issuer_name, "organization_id": l.issuer_code },
    });
    // A credit code is public; a resident ID number only with `identity`.
    if l.holder_code_type != "111" || id_number {
        record["personal_number"] = json!(secrets.decrypt(&l.holder_code_enc, l.id.as_bytes())?);
    }
    if let Some(until) = &l.valid_until {
        record["date_of_expiry"] = json!(until);
    }
    let surface: Map<String, Value> = serde_json::from_str(&l.surface).unwrap_or_default();
    let mut claims = json!({
        "licence_id": l.id,
        "licence_type_name": ty.name,
        "licence_number": l.number,
        "licence_status": l.status,
        "holder_name": l.holder_name,
        "valid_from": l.valid_from,
        "area_code": l.area_code,
    });
    // Only the surface fields the catalogue lets out.
    for field in &ty.released_fields {
        if let Some(v) = surface.get(field) {
            claims[field] = v.clone();
        }
    }
    Ok(json!({
        "verification": {
            "trust_framework": TRUST_FRAMEWORK,
            "evidence": [{ "type": "electronic_record", "record": record }]
        },
        "claims": claims
    }))
}

/// Adds licence elements to a claims object's `verified_claims` (turning it into an array if needed).
pub fn attach(claims: &mut Map<String, Value>, licences: Vec<Value>) {
    if licences.is_empty() {
        return;
    }
    let mut all = match claims.remove("verified_claims") {
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
        None => Vec::new(),
    };
    all.extend(licences);
    claims.insert("verified_claims".into(), Value::Array(all));
}
