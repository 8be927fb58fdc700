//! Subjects and claims, computed only for what is released.
//!
//! A grant's subject is the person, or — when the person acts for an organisation — the organisation,
//! with an `act` claim (RFC 8693 §4.1) naming the person and an `org` claim describing the organisation
//! and the representation.

use serde_json::{Map, Value, json};

use crate::crypto::Secrets;
use crate::identity::ResidentId;
use crate::services::oidc::BoxFuture;
use crate::services::oidc::scope::{AllowedFor, ScopeSet};
use crate::store::Db;
use crate::store::clients::{Client, SubjectType};
use crate::store::families::Family;
use crate::store::orgs::{Organisation, Representation};
use crate::store::persons::PersonRow;

/// Trust framework named in `verified_claims` and advertised in discovery.
pub const TRUST_FRAMEWORK: &str = "cn_gov";

/// The `sub` a client sees for a person or organisation: pairwise per sector by default (OIDC Core §8.1).
pub fn subject(secrets: &Secrets, client: &Client, local_id: &str) -> String {
    match client.subject_type {
        SubjectType::Public => local_id.to_owned(),
        SubjectType::Pairwise => secrets.pairwise_sub(&client.sector, local_id),
    }
}

/// The representations a person may act under, as the identity service decides them (every place that
/// lets a person act for an organisation asks it, so the rules live in one place).
pub trait Representations: Send + Sync {
    /// The representation `rep_id` of `person_id`, if it is still current and still covers the app.
    fn current_acting<'a>(
        &'a self,
        rep_id: &'a str,
        person_id: &'a str,
        client: &'a Client,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<(Representation, Organisation)>>>;
}

/// What finding a grant's subject needs.
#[derive(Clone, Copy)]
pub struct Subjects<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub representations: &'a dyn Representations,
}

/// Who a grant speaks about, checked now: an active person, and a still-current representation.
pub struct GrantSubject {
    pub sub: String,
    pub person: PersonRow,
    pub acting: Option<(Representation, Organisation)>,
    /// The checks behind the person's real-name level (`services::proofing::evidence`), read only for
    /// an app allowed `identity`.
    pub evidence: Vec<crate::store::proofing::EvidenceRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("the account is not active")]
    Inactive,
    #[error("the representation this grant acts under is no longer current")]
    RepresentationEnded,
    #[error("this app may no longer act for organisations")]
    OrgScopeWithdrawn,
    #[error("this app is disabled")]
    AppDisabled,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Who a grant speaks for now, checked at `now`: `person` is the family's person when the caller read
/// it together with the family (else it is read here).
pub async fn grant_subject_of(
    ctx: &Subjects<'_>,
    client: &Client,
    family: &Family,
    person: Option<PersonRow>,
    now: i64,
) -> Result<GrantSubject, SubjectError> {
    let person_id = family.person_id.as_deref().ok_or(SubjectError::Inactive)?;
    // The app as it is now: a disabled app, or one whose `org` scope an admin took away, holds nothing
    // more under a grant given before (its grants are revoked on disable; this covers the window).
    if client.disabled {
        return Err(SubjectError::AppDisabled);
    }
    if family.acting_rep_id.is_some() && !client.allows_scope("org") {
        return Err(SubjectError::OrgScopeWithdrawn);
    }
    let person = match person.filter(|p| p.id == person_id) {
        Some(p) => Some(p),
        None => ctx.db.person(person_id).await.map_err(anyhow::Error::from)?,
    };
    let person = person
        .filter(|p| p.status.is_active())
        .ok_or(SubjectError::Inactive)?;
    let acting = match &family.acting_rep_id {
        None => None,
        Some(rep_id) => Some(
            ctx.representations
                .current_acting(rep_id, person_id, client, now)
                .await?
                .ok_or(SubjectError::RepresentationEnded)?,
        ),
    };
    let sub = match &acting {
        Some((_, org)) => subject(ctx.secrets, client, &org.id),
        None => subject(ctx.secrets, client, person_id),
    };
    let evidence = match client.allows_scope("identity") {
        true => crate::services::proofing::evidence::of(ctx.db, &person).await?,
        false => Vec::new(),
    };
    Ok(GrantSubject {
        sub,
        person,
        acting,
        evidence,
    })
}

/// The scopes that count for a token or a userinfo answer now: those asked for (the grant's, or fewer
/// on a refresh, or the access token's) that the app is still allowed. An admin who takes a scope from
/// an app stops the release at once, without waiting for its grants to expire.
pub fn effective_scopes(client: &Client, asked: &ScopeSet) -> ScopeSet {
    asked.allowed_for(client)
}

/// Names of claims the request asks for in `member` (`userinfo` or `id_token`) of the `claims` parameter.
pub fn requested(claims: Option<&Value>, member: &str) -> Vec<String> {
    claims
        .and_then(|c| c.get(member))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

const PROFILE: [&str; 3] = ["name", "birthdate", "gender"];
const PHONE: [&str; 2] = ["phone_number", "phone_number_verified"];
const IDENTITY: [&str; 2] = ["id_number", "real_name_level"];

fn scope_of(claim: &str) -> Option<&'static str> {
    if PROFILE.contains(&claim) {
        Some("profile")
    } else if PHONE.contains(&claim) {
        Some("phone")
    } else if IDENTITY.contains(&claim) {
        Some("identity")
    } else {
        None
    }
}

/// Claim names released for these scopes plus individually requested ones (only within granted scopes).
pub fn released(scopes: &ScopeSet, extra: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let mut add = |name: &'static str| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    for scope in scopes.iter() {
        match scope {
            "profile" => PROFILE.into_iter().for_each(&mut add),
            "phone" => PHONE.into_iter().for_each(&mut add),
            "identity" => IDENTITY.into_iter().for_each(&mut add),
            _ => {}
        }
    }
    for name in extra {
        let known = PROFILE
            .into_iter()
            .chain(PHONE)
            .chain(IDENTITY)
            .find(|c| c == name);
        if let Some(c) = known
            && scope_of(c).is_some_and(|s| scopes.contains(s))
        {
            add(c);
        }
    }
    out
}

fn resident_id(secrets: &Secrets, person: &PersonRow) -> anyhow::Result<ResidentId> {
    let plain = secrets.decrypt(&person.id_number_enc, person.id.as_bytes())?;
    ResidentId::parse(&plain).map_err(|e| anyhow::anyhow!("stored ID number invalid: {}", e.code()))
}

/// The values of `names` for a person. The ID number is decrypted only if a claim derived from it is asked.
pub fn person_claims(
    secrets: &Secrets,
    person: &PersonRow,
    names: &[&str],
) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    let needs_id = names
        .iter()
        .any(|n| matches!(*n, "birthdate" | "gender" | "id_number"));
    let id = if needs_id {
        Some(resident_id(secrets, person)?)
    } else {
        None
    };
    for name in names {
        let value = match (*name, &id) {
            ("name", _) => json!(person.name),
            ("birthdate", Some(id)) => json!(id.birthdate_iso()),
            ("gender", Some(id)) => json!(id.gender().as_oidc_str()),
            ("id_number", Some(id)) => json!(id.expose()),
            ("real_name_level", _) => json!(person.real_name_level),
            ("phone_number", _) => match &person.phone {
                Some(phone) => json!(phone),
                None => continue,
            },
            ("phone_number_verified", _) => match &person.phone {
                Some(_) => json!(person.phone_verified),
                None => continue,
            },
            _ => continue,
        };
        out.insert((*name).to_owned(), value);
    }
    Ok(out)
}

/// The real-name verification as an OIDC4IDA `verified_claims` element (evidence type `document`, an
/// identity card), for persons verified online (level 2) or at a counter (level 3). The evidence never
/// carries the ID number (it is released only as the `id_number` claim, under its own scope).
pub fn real_name_verified_claims(secrets: &Secrets, person: &PersonRow) -> anyhow::Result<Option<Value>> {
    if person.real_name_level < 2 {
        return Ok(None);
    }
    let id = resident_id(secrets, person)?;
    let time = person
        .real_name_verified_at
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    // In-person proofing (`pipp`) only for a check at a counter; an online check validated the card's
    // data against the authorities (`data`), whatever level a face comparison then reached.
    let method = if crate::services::proofing::evidence::at_counter(person) {
        "pipp"
    } else {
        "data"
    };
    let mut verification = json!({
        "trust_framework": TRUST_FRAMEWORK,
        "assurance_level": person.real_name_level.to_string(),
        "evidence": [{
            "type": "document",
            "method": method,
            "document_details": { "type": "idcard", "issuer": { "country_code": "CHN" } }
        }]
    });
    if let Some(time) = time {
        verification["time"] = json!(time);
    }
    Ok(Some(json!({
        "verification": verification,
        "claims": {
            "name": person.name,
            "birthdate": id.birthdate_iso(),
            "gender": id.gender().as_oidc_str(),
        }
    })))
}

/// Every claim about the subject for one member (`userinfo` or `id_token`). `standard` decides whether
/// scope-based claims go in (userinfo) or only individually requested ones (ID token).
pub fn subject_claims(
    secrets: &Secrets,
    client: &Client,
    gs: &GrantSubject,
    scopes: &ScopeSet,
    claims_request: Option<&Value>,
    member: &str,
    standard: bool,
) -> anyhow::Result<Map<String, Value>> {
    let asked = requested(claims_request, member);
    // Only scopes the app still has count, whatever the token says.
    let scopes = &scopes.allowed_for(client);
    let names: Vec<&str> = released(scopes, &asked)
        .into_iter()
        .filter(|n| standard || asked.iter().any(|a| a == n))
        .collect();
    let person = person_claims(secrets, &gs.person, &names)?;
    let mut out = Map::new();
    match &gs.acting {
        None => out.extend(person),
        // The subject stays the organisation's; who acted and the organisation's details go out only
        // while `org` is in the effective scope.
        Some(_) if !scopes.contains("org") => {}
        Some((rep, org)) => {
            // The subject is the organisation; what is known of the person goes inside `act`.
            let mut act = Map::new();
            act.insert("sub".into(), json!(subject(secrets, client, &gs.person.id)));
            act.extend(person);
            out.insert("act".into(), Value::Object(act));
            out.insert(
                "org".into(),
                json!({
                    "credit_code": org.credit_code,
                    "name": org.name,
                    "type": org.org_type,
                    "role": rep.role.as_str(),
                    "matters": rep.matters,
                }),
            );
        }
    }
    if asked.iter().any(|a| a == "verified_claims")
        && scopes.contains("identity")
        && gs.acting.is_none()
        && let Some(mut vc) = real_name_verified_claims(secrets, &gs.person)?
    {
        crate::services::proofing::evidence::attach(&mut vc, &gs.person, &gs.evidence);
        out.insert("verified_claims".into(), vc);
    }
    Ok(out)
}
