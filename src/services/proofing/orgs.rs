//! Legal persons by themselves. A person at real-name level 2 or above enters a credit code; the
//! legal-person registry is asked; when the enterprise is active and names this person (name and ID
//! number) as its legal representative, the organisation and the legal-representative representation
//! are recorded at once, as a binding. The registry is asked again after `recheck_ttl`: revoked or
//! cancelled suspends the organisation (every representation of it stops), another legal representative
//! suspends the binding and its representation (and so every agent appointed under it).
//!
//! The legal representative appoints agents, who accept on their own account page; the representation
//! is recorded then, under `services::identity::appoint_agent`'s rules. Either side ends it. Every
//! change is audited and announced by SMS to both.

use serde_json::json;

use super::connectors::{Connector, Upstream};
use super::levels::{record_check, unavailable};
use super::{Ctx, Event, ProofingError};
use crate::identity::{CreditCode, CreditCodeError, Phone, ResidentId};
use crate::services::identity::NewRepresentation;
use crate::store::orgs::{Matters, Organisation, Representation, Role};
use crate::store::persons::PersonRow;
use crate::store::proofing::{AppointmentRow, BindingRow};

/// Parses a credit code; one failing only its check character passes if an admin allow-listed it.
async fn credit_code(ctx: &Ctx<'_>, raw: &str) -> Result<CreditCode, ProofingError> {
    match CreditCode::parse(raw) {
        Ok(code) => Ok(code),
        Err(CreditCodeError::CheckCharacter { .. })
            if ctx
                .db
                .credit_code_allowed(&raw.trim().to_ascii_uppercase())
                .await? =>
        {
            CreditCode::parse_allowing(raw, &|_| true).map_err(|_| ProofingError::Invalid("credit_code"))
        }
        Err(_) => Err(ProofingError::Invalid("credit_code")),
    }
}

/// Whether the registry's legal representative is this person: same name, same ID number (compared
/// by keyed hash, in constant time).
fn is_person(ctx: &Ctx<'_>, person: &PersonRow, name: &str, id_number: &str) -> bool {
    let Ok(id) = ResidentId::parse(id_number) else {
        return false;
    };
    let hash = ctx.secrets.id_hash(id.as_str());
    name.trim() == person.name.trim()
        && crate::crypto::ct_eq(hash.as_bytes(), person.id_number_hash.as_bytes())
}

const NOTICE: &str = "【统一身份认证】您账号下的企业授权有变更，请登录统一身份认证“我的企业”查看。如非本人操作，请联系政务服务窗口。";

/// A person binds an enterprise they legally represent.
pub async fn bind(
    ctx: &Ctx<'_>,
    person: &PersonRow,
    raw_code: &str,
    address: &str,
    now: i64,
) -> Result<Organisation, ProofingError> {
    if person.real_name_level < 2 {
        return Err(ProofingError::NeedsLevel(2));
    }
    if !ctx.connectors().configured(Connector::Registry) {
        return Err(ProofingError::NotConfigured(Connector::Registry));
    }
    let code = credit_code(ctx, raw_code).await?;
    if !super::reserve_attempt(ctx, &person.id, address, now).await? {
        return Err(ProofingError::Throttled);
    }
    let actor = format!("person:{}", person.id);
    let record = match ctx.connectors().enterprise(code.as_str()).await {
        Ok(r) => r,
        Err(Upstream::NotFound {
            transaction_id,
            credit_code,
        }) if about(credit_code.as_deref(), code.as_str()) => {
            record_check(
                ctx,
                &person.id,
                Connector::Registry,
                "not_found",
                Some(&transaction_id),
                address,
                now,
            )
            .await?;
            return Err(ProofingError::UnknownEnterprise);
        }
        Err(e) => {
            record_check(
                ctx,
                &person.id,
                Connector::Registry,
                "unavailable",
                None,
                address,
                now,
            )
            .await?;
            return Err(unavailable(Connector::Registry, e));
        }
    };
    let txn = record.transaction_id.clone();
    let fail =
        |outcome: &'static str| refused(ctx, person, &code, &record.transaction_id, outcome, address, now);
    if record.credit_code.trim().to_ascii_uppercase() != code.as_str() {
        fail("malformed").await?;
        return Err(ProofingError::Unavailable(Connector::Registry));
    }
    if record.status != super::connectors::EnterpriseStatus::Active {
        let status = record.status.as_str().to_owned();
        fail("inactive").await?;
        return Err(ProofingError::EnterpriseInactive(status));
    }
    let lr = record.legal_representative.clone();
    let (name, org_type) = (record.name.clone(), record.enterprise_type.clone());
    if !is_person(ctx, person, &lr.name, &lr.id_number) {
        fail("not_representative").await?;
        return Err(ProofingError::NotLegalRepresentative);
    }
    record_check(
        ctx,
        &person.id,
        Connector::Registry,
        "match",
        Some(&txn),
        address,
        now,
    )
    .await?;

    let org = match ctx.db.org_by_code(code.as_str()).await? {
        Some(org) => {
            let mine = ctx
                .db
                .bindings(Some(&person.id), Some(&org.id), Some("active"), 1)
                .await?;
            if !mine.is_empty() {
                return Err(ProofingError::AlreadyBound);
            }
            if org.status != "active" {
                ctx.db.set_org_status(&org.id, "active", now).await?;
            }
            org
        }
        None => {
            let org = Organisation {
                id: uuid::Uuid::now_v7().to_string(),
                credit_code: code.as_str().to_owned(),
                name: name.trim().chars().take(200).collect(),
                org_type: org_type.trim().chars().take(64).collect(),
                status: "active".into(),
                version: 1,
            };
            ctx.db.insert_org(&org, now).await?;
            org
        }
    };
    // The registry names this person now: whoever bound it before is no longer its representative.
    for old in ctx.db.bindings(None, Some(&org.id), Some("active"), 100).await? {
        suspend_one(ctx, &old, "representative_changed", "registry", now).await?;
    }
    let rep = Representation {
        id: uuid::Uuid::now_v7().to_string(),
        person_id: person.id.clone(),
        org_id: org.id.clone(),
        role: Role::LegalRepresentative,
        matters: Matters::all(),
        valid_from: now,
        valid_until: None,
        granted_by: "registry".into(),
        revoked_at: None,
        version: 1,
        appointed_under: None,
    };
    ctx.db.insert_rep(&rep, now).await?;
    let binding = BindingRow {
        id: uuid::Uuid::now_v7().to_string(),
        org_id: org.id.clone(),
        person_id: person.id.clone(),
        rep_id: rep.id.clone(),
        status: "active".into(),
        reason: None,
        transaction_id: txn.clone(),
        bound_at: now,
        checked_at: now,
        suspended_at: None,
        suspended_by: None,
    };
    ctx.db.insert_binding(&binding).await?;
    ctx.audit(Event { actor: &actor, action: "org.bind", subject: &org.id, address, outcome: "success" }, json!({ "binding": binding.id, "representation": rep.id, "credit_code": org.credit_code, "transaction_id": txn }), now)
        .await;
    ctx.notify(person.phone.as_deref(), "org_change", NOTICE, now)
        .await;
    Ok(org)
}

/// A binding refused after the registry answered: the check and the audit event say why.
async fn refused(
    ctx: &Ctx<'_>,
    person: &PersonRow,
    code: &CreditCode,
    txn: &str,
    outcome: &'static str,
    address: &str,
    now: i64,
) -> Result<(), ProofingError> {
    record_check(
        ctx,
        &person.id,
        Connector::Registry,
        outcome,
        Some(txn),
        address,
        now,
    )
    .await?;
    ctx.audit(
        Event {
            actor: &format!("person:{}", person.id),
            action: "org.bind",
            subject: &person.id,
            address,
            outcome: "failure",
        },
        json!({ "credit_code": code.as_str(), "failed": outcome, "transaction_id": txn }),
        now,
    )
    .await;
    Ok(())
}

/// Suspends one binding and revokes its representation (agents appointed under it lapse with it).
async fn suspend_one(
    ctx: &Ctx<'_>,
    b: &BindingRow,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<bool, ProofingError> {
    if !ctx.db.suspend_binding(&b.id, reason, by, now).await? {
        return Ok(false);
    }
    ctx.db.revoke_rep(&b.rep_id, now).await?;
    ctx.audit(
        Event {
            actor: by,
            action: "org.binding.suspend",
            subject: &b.org_id,
            address: "",
            outcome: "success",
        },
        json!({ "binding": b.id, "representation": b.rep_id, "reason": reason }),
        now,
    )
    .await;
    if let Some(p) = ctx.db.person(&b.person_id).await? {
        ctx.notify(p.phone.as_deref(), "org_change", NOTICE, now).await;
    }
    Ok(true)
}

/// A super admin suspends a binding (`by` is the admin's actor).
pub async fn suspend(
    ctx: &Ctx<'_>,
    binding_id: &str,
    by: &str,
    now: i64,
) -> Result<BindingRow, ProofingError> {
    let b = ctx.db.binding(binding_id).await?.ok_or(ProofingError::NotFound)?;
    if !suspend_one(ctx, &b, "admin", by, now).await? {
        return Err(ProofingError::Invalid("the binding is not active"));
    }
    ctx.db.binding(binding_id).await?.ok_or(ProofingError::NotFound)
}

/// Whether a registry answer is about the enterprise asked for: a `credit_code` it names must be that
/// code (an absent one, allowed on a `404`, names nothing else).
fn about(answered: Option<&str>, asked: &str) -> bool {
    answered.is_none_or(|c| c.trim().eq_ignore_ascii_case(asked))
}

/// Asks the registry again about a bound enterprise. Returns the new status of the binding.
pub async fn recheck(ctx: &Ctx<'_>, b: &BindingRow, now: i64) -> Result<String, ProofingError> {
    let Some(org) = ctx.db.org(&b.org_id).await? else {
        return Ok(b.status.clone());
    };
    let record = match ctx.connectors().enterprise(&org.credit_code).await {
        Ok(r) => r,
        Err(Upstream::NotFound {
            transaction_id,
            credit_code,
        }) if about(credit_code.as_deref(), &org.credit_code) => {
            record_check(
                ctx,
                &b.person_id,
                Connector::Registry,
                "not_found",
                Some(&transaction_id),
                "recheck",
                now,
            )
            .await?;
            ctx.db.set_org_status(&org.id, "cancelled", now).await?;
            suspend_one(ctx, b, "cancelled", "registry", now).await?;
            return Ok("suspended".into());
        }
        Err(_) => {
            // Asked again in a few minutes rather than at every sweep.
            ctx.db
                .binding_checked(&b.id, now - ctx.settings.recheck_ttl + 300)
                .await?;
            return Ok(b.status.clone());
        }
    };
    if !about(Some(&record.credit_code), &org.credit_code) {
        // An answer about another enterprise says nothing about this one: malformed, asked again later.
        tracing::warn!(binding = %b.id, "registry answered about another enterprise");
        ctx.db
            .binding_checked(&b.id, now - ctx.settings.recheck_ttl + 300)
            .await?;
        return Ok(b.status.clone());
    }
    let status = record.status.as_str();
    let lr = record.legal_representative.clone();
    let same = match ctx.db.person(&b.person_id).await? {
        Some(p) => is_person(ctx, &p, &lr.name, &lr.id_number),
        None => false,
    };
    let outcome = match (status, same) {
        ("active", true) => "match",
        ("active", false) => "not_representative",
        _ => "inactive",
    };
    record_check(
        ctx,
        &b.person_id,
        Connector::Registry,
        outcome,
        Some(&record.transaction_id),
        "recheck",
        now,
    )
    .await?;
    if status != "active" {
        // Every representation of a revoked or cancelled enterprise stops (`current_reps` reads only
        // active organisations).
        ctx.db.set_org_status(&org.id, status, now).await?;
        suspend_one(ctx, b, status, "registry", now).await?;
        return Ok("suspended".into());
    }
    if !same {
        suspend_one(ctx, b, "representative_changed", "registry", now).await?;
        return Ok("suspended".into());
    }
    ctx.db.binding_checked(&b.id, now).await?;
    Ok("active".into())
}

pub async fn recheck_due(ctx: &Ctx<'_>, now: i64) -> Result<(), ProofingError> {
    if !ctx.connectors().configured(Connector::Registry) {
        return Ok(());
    }
    for b in ctx.db.bindings_due(now - ctx.settings.recheck_ttl, 20).await? {
        // One binding that cannot be re-checked holds up no other.
        if let Err(e) = recheck(ctx, &b, now).await {
            tracing::warn!(binding = %b.id, error = %e, "registry re-check failed; asked again later");
            let _ = ctx
                .db
                .binding_checked(&b.id, now - ctx.settings.recheck_ttl + 300)
                .await;
        }
    }
    Ok(())
}

/// An appointment the legal representative (or a manager) makes.
pub struct NewAppointment<'a> {
    pub org_id: &'a str,
    /// The appointee's resident ID number or phone number.
    pub appointee: &'a str,
    pub role: &'a str,
    /// `all`, or matter codes separated by spaces or commas.
    pub matters: &'a str,
    /// Days from now; none for open-ended (within the appointer's own authority).
    pub valid_days: Option<i64>,
}

fn parse_matters(raw: &str) -> Result<Matters, ProofingError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("all") {
        return Ok(Matters::all());
    }
    let list: Vec<String> = raw
        .split([',', ' ', '，'])
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() || list.iter().any(|m| m.len() > 64) {
        return Err(ProofingError::Invalid("matters"));
    }
    Ok(Matters::Only(list))
}

/// The legal representative appoints an agent; pending until the appointee accepts.
pub async fn appoint(
    ctx: &Ctx<'_>,
    appointer: &PersonRow,
    new: NewAppointment<'_>,
    address: &str,
    now: i64,
) -> Result<AppointmentRow, ProofingError> {
    let role = Role::parse(new.role).ok_or(ProofingError::Invalid("role"))?;
    if role != Role::Agent {
        return Err(ProofingError::Forbidden(
            "managers are recorded from the registry or at the counter; appoint agents here".into(),
        ));
    }
    let holds = ctx
        .db
        .current_reps(&appointer.id, now)
        .await?
        .into_iter()
        .any(|(r, _)| r.org_id == new.org_id && r.role.may_appoint());
    if !holds {
        return Err(ProofingError::Forbidden(
            "you do not represent this organisation".into(),
        ));
    }
    let matters = parse_matters(new.matters)?;
    let valid_until = match new.valid_days {
        Some(d) if (1..=3650).contains(&d) => Some(now + d * 86_400),
        Some(_) => return Err(ProofingError::Invalid("valid_days")),
        None => None,
    };
    if !super::reserve_attempt(ctx, &appointer.id, address, now).await? {
        return Err(ProofingError::Throttled);
    }
    let raw = new.appointee.trim();
    let appointee = if let Ok(id) = ResidentId::parse(raw) {
        ctx.db
            .person_by_id_hash(&ctx.secrets.id_hash(id.as_str()))
            .await?
    } else if let Ok(phone) = Phone::parse(raw) {
        ctx.db.person_by_phone(phone.as_str()).await?
    } else {
        return Err(ProofingError::Invalid("appointee"));
    };
    let appointee = appointee
        .filter(|p| p.status == "active")
        .ok_or(ProofingError::NotFound)?;
    if appointee.id == appointer.id {
        return Err(ProofingError::Forbidden("nobody appoints themself".into()));
    }
    let row = AppointmentRow {
        id: uuid::Uuid::now_v7().to_string(),
        org_id: new.org_id.to_owned(),
        appointer_id: appointer.id.clone(),
        appointee_id: appointee.id.clone(),
        role: role.as_str().to_owned(),
        matters: serde_json::to_string(&matters).map_err(anyhow::Error::from)?,
        valid_until,
        status: "pending".into(),
        rep_id: None,
        created_at: now,
    };
    ctx.db.insert_appointment(&row).await?;
    ctx.audit(Event { actor: &format!("person:{}", appointer.id), action: "org.appoint", subject: new.org_id, address, outcome: "success" }, json!({ "appointment": row.id, "appointee": appointee.id, "role": row.role, "matters": matters, "valid_until": valid_until }), now)
        .await;
    ctx.notify(appointer.phone.as_deref(), "org_change", NOTICE, now)
        .await;
    ctx.notify(appointee.phone.as_deref(), "org_change", NOTICE, now)
        .await;
    Ok(row)
}

/// The appointee accepts: the representation is recorded under the appointment rules.
pub async fn accept(
    ctx: &Ctx<'_>,
    person: &PersonRow,
    appointment_id: &str,
    address: &str,
    now: i64,
) -> Result<AppointmentRow, ProofingError> {
    let a = ctx
        .db
        .appointment(appointment_id)
        .await?
        .filter(|a| a.appointee_id == person.id && a.status == "pending")
        .ok_or(ProofingError::NotFound)?;
    let matters: Matters = serde_json::from_str(&a.matters).map_err(anyhow::Error::from)?;
    let new = NewRepresentation {
        person_id: person.id.clone(),
        org_id: a.org_id.clone(),
        role: Role::Agent,
        matters,
        valid_from: now,
        valid_until: a.valid_until,
    };
    let rep_id = ctx
        .host
        .appoint_agent(&a.appointer_id, new, now)
        .await
        .map_err(ProofingError::Forbidden)?;
    if !ctx
        .db
        .decide_appointment(
            &a.id,
            "pending",
            "accepted",
            Some(&rep_id),
            &format!("person:{}", person.id),
            now,
        )
        .await?
    {
        // Ended meanwhile by the other side: the representation just recorded goes too.
        ctx.db.revoke_rep(&rep_id, now).await?;
        return Err(ProofingError::NotFound);
    }
    changed(ctx, &a, person, "org.appointment.accept", address, now).await?;
    ctx.db.appointment(&a.id).await?.ok_or(ProofingError::NotFound)
}

/// Either side ends an appointment, pending or accepted; an accepted one's representation is revoked.
pub async fn end(
    ctx: &Ctx<'_>,
    person: &PersonRow,
    appointment_id: &str,
    address: &str,
    now: i64,
) -> Result<(), ProofingError> {
    let a = ctx
        .db
        .appointment(appointment_id)
        .await?
        .filter(|a| a.appointee_id == person.id || a.appointer_id == person.id)
        .filter(|a| a.status == "pending" || a.status == "accepted")
        .ok_or(ProofingError::NotFound)?;
    if !ctx
        .db
        .decide_appointment(
            &a.id,
            &a.status,
            "ended",
            None,
            &format!("person:{}", person.id),
            now,
        )
        .await?
    {
        return Err(ProofingError::NotFound);
    }
    if let Some(rep) = &a.rep_id {
        ctx.db.revoke_rep(rep, now).await?;
    }
    changed(ctx, &a, person, "org.appointment.end", address, now).await
}

async fn changed(
    ctx: &Ctx<'_>,
    a: &AppointmentRow,
    by: &PersonRow,
    action: &str,
    address: &str,
    now: i64,
) -> Result<(), ProofingError> {
    ctx.audit(
        Event {
            actor: &format!("person:{}", by.id),
            action,
            subject: &a.org_id,
            address,
            outcome: "success",
        },
        json!({ "appointment": a.id, "appointer": a.appointer_id, "appointee": a.appointee_id }),
        now,
    )
    .await;
    for id in [&a.appointer_id, &a.appointee_id] {
        if let Some(p) = ctx.db.person(id).await? {
            ctx.notify(p.phone.as_deref(), "org_change", NOTICE, now).await;
        }
    }
    Ok(())
}

/// What `/account/organisations` shows a person.
pub struct Overview {
    /// (binding, organisation)
    pub bindings: Vec<(BindingRow, Option<Organisation>)>,
    /// Organisations the person may act for now, in any role: (name, credit code, role).
    pub represents: Vec<(String, String, String)>,
    /// Organisations the person may appoint agents for now: (id, name).
    pub may_appoint: Vec<(String, String)>,
    /// (appointment, organisation name, the other person's name, made by this person)
    pub appointments: Vec<(AppointmentRow, String, String, bool)>,
}

pub async fn overview(ctx: &Ctx<'_>, person: &PersonRow, now: i64) -> Result<Overview, ProofingError> {
    let mut bindings = Vec::new();
    for b in ctx.db.bindings(Some(&person.id), None, None, 50).await? {
        let org = ctx.db.org(&b.org_id).await?;
        bindings.push((b, org));
    }
    let current = ctx.db.current_reps(&person.id, now).await?;
    let represents = current
        .iter()
        .map(|(r, o)| (o.name.clone(), o.credit_code.clone(), r.role.as_str().to_owned()))
        .collect();
    let may_appoint = current
        .into_iter()
        .filter(|(r, _)| r.role.may_appoint())
        .map(|(_, o)| (o.id, o.name))
        .collect();
    let mut appointments = Vec::new();
    for a in ctx.db.appointments_of(&person.id).await? {
        let org = ctx.db.org(&a.org_id).await?.map(|o| o.name).unwrap_or_default();
        let mine = a.appointer_id == person.id;
        let other_id = if mine { &a.appointee_id } else { &a.appointer_id };
        let other = ctx.db.person(other_id).await?.map(|p| p.name).unwrap_or_default();
        appointments.push((a, org, other, mine));
    }
    Ok(Overview {
        represents,
        bindings,
        may_appoint,
        appointments,
    })
}
