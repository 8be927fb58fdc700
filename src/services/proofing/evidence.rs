//! The evidence behind a person's real-name level, as OIDC4IDA (OpenID Identity Assurance 1.0)
//! `evidence` elements added to the real-name `verified_claims` (`services::oidc::claims`):
//! `electronic_record` for each database check (population base database, carrier), an
//! `electronic_record` checked by biometric comparison (`bvr`) with its time for a face verification,
//! `vouch` for a counter verification, and a digital `vouch` naming the upstream's issuer for a person
//! an upstream created at its verified level (`services::federation`). Each names its check and
//! transaction id (`txn`) or issuer, and time; never the authority's answer, never an ID number.

use serde_json::{Value, json};

use crate::store::Db;
use crate::store::persons::PersonRow;
use crate::store::proofing::EvidenceRow;

fn rfc3339(t: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The recorded evidence of a person who is at level 2 or above (nothing to read below).
pub async fn of(db: &Db, person: &PersonRow) -> anyhow::Result<Vec<EvidenceRow>> {
    if person.real_name_level < 2 {
        return Ok(Vec::new());
    }
    Ok(db.evidence_of(&person.id).await?)
}

/// Whether the person's real-name level was set at a government service counter (in person).
pub fn at_counter(person: &PersonRow) -> bool {
    person
        .real_name_method
        .as_deref()
        .is_some_and(|m| m.starts_with("counter"))
}

/// The evidence elements for a person and their recorded checks.
pub fn elements(person: &PersonRow, rows: &[EvidenceRow]) -> Vec<Value> {
    let rank = |t: &str| {
        ["population", "carrier", "face", "upstream"]
            .iter()
            .position(|k| *k == t)
    };
    let mut rows: Vec<&EvidenceRow> = rows.iter().collect();
    rows.sort_by_key(|r| rank(&r.check_type));
    let mut out = Vec::new();
    for row in rows {
        let time = rfc3339(row.at);
        let element = match row.check_type.as_str() {
            "population" => json!({
                "type": "electronic_record",
                "check_details": [{ "check_method": "data", "organization": "population", "txn": row.transaction_id, "time": time }],
                "time": time,
                "record": { "type": "population_register", "source": { "name": "population base database", "country_code": "CHN" } },
            }),
            "carrier" => json!({
                "type": "electronic_record",
                "check_details": [{ "check_method": "data", "organization": "carrier", "txn": row.transaction_id, "time": time }],
                "time": time,
                "record": { "type": "mobile_subscription", "source": { "name": "mobile carrier", "country_code": "CHN" } },
            }),
            "face" => json!({
                "type": "electronic_record",
                "method": "bvr",
                "check_details": [{ "check_method": "bvr", "organization": "face", "txn": row.transaction_id, "time": time }],
                "time": time,
                "record": { "type": "population_register", "source": { "name": "population base database", "country_code": "CHN" } },
            }),
            // A person created by an upstream's verified assertion: the upstream (its issuer) vouched
            // for the identity, digitally, at that time.
            "upstream" => json!({
                "type": "vouch",
                "check_details": [{ "check_method": "data", "organization": row.transaction_id, "time": time }],
                "time": time,
                "attestation": { "type": "digital_attestation", "voucher": { "organization": row.transaction_id } },
            }),
            _ => continue,
        };
        out.push(element);
    }
    if at_counter(person) {
        let time = person.real_name_verified_at.and_then(rfc3339);
        out.push(json!({
            "type": "vouch",
            "check_details": [{ "check_method": "vpip", "time": time }],
            "time": time,
            "attestation": { "type": "written_attestation", "voucher": { "organization": "government service counter" } },
        }));
    }
    out
}

/// Appends the evidence elements to a `verified_claims` element's `verification.evidence`.
pub fn attach(verified_claims: &mut Value, person: &PersonRow, rows: &[EvidenceRow]) {
    let extra = elements(person, rows);
    if extra.is_empty() {
        return;
    }
    if let Some(Value::Array(evidence)) = verified_claims
        .get_mut("verification")
        .and_then(|v| v.get_mut("evidence"))
    {
        evidence.extend(extra);
    }
}
