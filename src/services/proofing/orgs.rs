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

use super::connectors::{Connector, EnterpriseStatus, Upstream};
use super::levels::{record_check, unavailable};
use super::{Ctx, Event, ProofingError};
use crate::identity::{CreditCode, CreditCodeError, Phone, ResidentId};
use crate::services::identity::NewRepresentation;
use crate::store::orgs::{Matters, OrgStatus, Organisation, Representation, Role};
use crate::store::persons::PersonRow;
use crate::store::proofing::{AppointmentRow, AppointmentStatus, BindingRow, BindingStatus};

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

/// The organisation statuses the registry sets (and a later `active` answer or binding lifts).
/// The organisation statuses the registry's answer sets (an admin's PATCH does not undo them, see
/// `http::admin::orgs`).
pub const REGISTRY_STATUSES: [&str; 3] = ["revoked", "cancelled", "gone"];

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
    if record.status != EnterpriseStatus::Active {
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
                .bindings(Some(&person.id), Some(&org.id), None, 100)
                .await?;
            if mine.iter().any(|b| b.status == BindingStatus::Active) {
                return Err(ProofingError::AlreadyBound);
            }
            // A super admin's suspension of this person's binding stands: binding again does not undo it.
            if mine.iter().any(|b| {
                b.status == BindingStatus::Suspended && b.suspended_by.as_deref() != Some("registry")
            }) {
                fail("admin_suspended").await?;
                return Err(ProofingError::SuspendedByAdmin);
            }
            if org.status != OrgStatus::Active {
                // The registry's own statuses are the registry's to lift; an admin's deactivation is not.
                if !ctx
                    .db
                    .set_org_status_from(&org.id, &REGISTRY_STATUSES, OrgStatus::Active.as_str(), now)
                    .await?
                {
                    fail("org_deactivated").await?;
                    return Err(ProofingError::OrgDeactivated);
                }
            }
            org
        }
        None => {
            let org = Organisation {
                id: crate::ids::new_id(now, ctx.rng).to_string(),
                credit_code: code.as_str().to_owned(),
                name: name.trim().chars().take(200).collect(),
                org_type: org_type.trim().chars().take(64).collect(),
                status: OrgStatus::Active,
                version: 1,
            };
            ctx.db.insert_org(&org, now).await?;
            org
        }
    };
    // A binding the registry's answer had suspended: this person's comes back (the registry names
    // them again), anyone else's is over.
    for old in ctx
        .db
        .bindings(None, Some(&org.id), Some(BindingStatus::Suspended.as_str()), 100)
        .await?
    {
        let restorable = old.suspended_by.as_deref() == Some("registry")
            && old
                .reason
                .as_deref()
                .is_some_and(|r| REGISTRY_STATUSES.contains(&r));
        if !restorable {
            continue;
        }
        if old.person_id == person.id && rep_live(ctx, &old.rep_id).await? {
            if ctx.db.restore_binding(&old.id, now).await? {
                ctx.audit(Event { actor: &actor, action: "org.bind", subject: &org.id, address, outcome: "success" }, json!({ "binding": old.id, "representation": old.rep_id, "restored": true, "credit_code": org.credit_code, "transaction_id": txn }), now)
                    .await;
                ctx.notify(person.phone.as_deref(), "org_change", NOTICE, now)
                    .await;
                return Ok(org);
            }
        } else {
            ctx.db.end_binding(&old.id, "representative_changed", now).await?;
            ctx.db.revoke_rep(&old.rep_id, now).await?;
        }
    }
    // The registry names this person now: whoever bound it before is no longer its representative.
    for old in ctx
        .db
        .bindings(None, Some(&org.id), Some(BindingStatus::Active.as_str()), 100)
        .await?
    {
        suspend_one(ctx, &old, "representative_changed", "registry", now).await?;
    }
    let rep = Representation {
        id: crate::ids::new_id(now, ctx.rng).to_string(),
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
        id: crate::ids::new_id(now, ctx.rng).to_string(),
        org_id: org.id.clone(),
        person_id: person.id.clone(),
        rep_id: rep.id.clone(),
        status: BindingStatus::Active,
        reason: None,
        transaction_id: txn.clone(),
        bound_at: now,
        checked_at: now,
        suspended_at: None,
        suspended_by: None,
    };
    if let Err(e) = ctx.db.insert_binding(&binding).await {
        // Another binding of this organisation became active meanwhile (one active binding per
        // organisation, by a unique index): this one did not happen.
        ctx.db.revoke_rep(&rep.id, now).await?;
        return match ctx
            .db
            .bindings(None, Some(&org.id), Some(BindingStatus::Active.as_str()), 1)
            .await?
        {
            b if !b.is_empty() => Err(ProofingError::AlreadyBound),
            _ => Err(e.into()),
        };
    }
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
    // The enterprise gone, revoked or cancelled in the registry suspends: its organisation is inactive
    // (so no representation of it is current) and a later `active` answer restores it. Anything else
    // (another legal representative, an admin) ends the representation for good.
    if by != "registry" || !REGISTRY_STATUSES.contains(&reason) {
        ctx.db.revoke_rep(&b.rep_id, now).await?;
    }
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

/// A super admin suspends a binding (`by` is the admin's actor). One the registry's answer already
/// suspended is **pinned**: the suspension becomes the admin's (its representation revoked), so no
/// later `active` answer from the registry lifts it.
pub async fn suspend(
    ctx: &Ctx<'_>,
    binding_id: &str,
    by: &str,
    now: i64,
) -> Result<BindingRow, ProofingError> {
    let b = ctx.db.binding(binding_id).await?.ok_or(ProofingError::NotFound)?;
    if b.status == BindingStatus::Suspended && b.suspended_by.as_deref() == Some("registry") {
        if !ctx.db.pin_binding(&b.id, by, now).await? {
            return Err(ProofingError::Invalid("the binding is not active"));
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
            json!({ "binding": b.id, "representation": b.rep_id, "reason": "admin", "pinned": b.reason }),
            now,
        )
        .await;
        if let Some(p) = ctx.db.person(&b.person_id).await? {
            ctx.notify(p.phone.as_deref(), "org_change", NOTICE, now).await;
        }
    } else if !suspend_one(ctx, &b, "admin", by, now).await? {
        return Err(ProofingError::Invalid("the binding is not active"));
    }
    ctx.db.binding(binding_id).await?.ok_or(ProofingError::NotFound)
}

/// A super admin lifts a suspension the registry's answer made (gone, revoked or cancelled), having
/// checked the enterprise by other means: the binding and the organisation are active again, audited
/// `org.binding.restore` with the admin as actor. Only such a suspension, whose representation was
/// never revoked, and only while no other binding of the organisation is active; an admin's own
/// suspension or pin stays (nothing undoes it yet: binding again is refused as an admin suspension).
pub async fn lift(ctx: &Ctx<'_>, binding_id: &str, by: &str, now: i64) -> Result<BindingRow, ProofingError> {
    let b = ctx.db.binding(binding_id).await?.ok_or(ProofingError::NotFound)?;
    let registry_suspended = b.status == BindingStatus::Suspended
        && b.suspended_by.as_deref() == Some("registry")
        && b.reason
            .as_deref()
            .is_some_and(|r| REGISTRY_STATUSES.contains(&r));
    if !registry_suspended || !rep_live(ctx, &b.rep_id).await? {
        return Err(ProofingError::Invalid(
            "only a suspension the registry's answer made can be lifted",
        ));
    }
    if !ctx
        .db
        .bindings(None, Some(&b.org_id), Some(BindingStatus::Active.as_str()), 1)
        .await?
        .is_empty()
    {
        return Err(ProofingError::Invalid(
            "another binding of this organisation is active",
        ));
    }
    // The binding and the organisation in one transaction; not counted by the restore brake.
    if !ctx
        .db
        .lift_binding(&b.id, &b.org_id, &REGISTRY_STATUSES, now)
        .await?
    {
        return Err(ProofingError::Invalid(
            "only a suspension the registry's answer made can be lifted",
        ));
    }
    ctx.audit(
        Event {
            actor: by,
            action: "org.binding.restore",
            subject: &b.org_id,
            address: "",
            outcome: "success",
        },
        json!({ "binding": b.id, "representation": b.rep_id, "lifted": b.reason }),
        now,
    )
    .await;
    if let Some(p) = ctx.db.person(&b.person_id).await? {
        ctx.notify(p.phone.as_deref(), "org_change", NOTICE, now).await;
    }
    ctx.db.binding(binding_id).await?.ok_or(ProofingError::NotFound)
}

/// Whether a registry answer is about the enterprise asked for: a `credit_code` it names must be that
/// code (an absent one, allowed on a `404`, names nothing else).
fn about(answered: Option<&str>, asked: &str) -> bool {
    answered.is_none_or(|c| c.trim().eq_ignore_ascii_case(asked))
}

/// Whether a binding's representation was never revoked (so restoring the binding restores it).
async fn rep_live(ctx: &Ctx<'_>, rep_id: &str) -> Result<bool, ProofingError> {
    Ok(ctx.db.rep(rep_id).await?.is_some_and(|r| r.revoked_at.is_none()))
}

/// What one re-check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// Nothing changed (still active, or no usable answer: asked again later).
    Unchanged,
    /// The binding was suspended.
    Suspended,
    /// The binding would be suspended, but the sweep's brake allows no more: left as it is.
    Braked,
    /// The binding would be restored, but the restore brake allows no more: left suspended.
    RestoreBraked,
    /// A binding the registry's answer had suspended is active again.
    Restored,
}

/// Asks the registry again about a bound enterprise: gone (a contract `404`), revoked or cancelled
/// suspends the binding and the organisation, another legal representative ends the binding, and an
/// `active` answer naming the same legal representative restores a binding the registry's answer had
/// suspended. `may_suspend` false (the sweep's brake) leaves a binding that would be suspended as it is;
/// `may_restore` false (the restore brake) leaves one that would be restored suspended.
pub async fn recheck(
    ctx: &Ctx<'_>,
    b: &BindingRow,
    may_suspend: bool,
    may_restore: bool,
    now: i64,
) -> Result<Recheck, ProofingError> {
    let Some(org) = ctx.db.org(&b.org_id).await? else {
        return Ok(Recheck::Unchanged);
    };
    let later = now - ctx.settings.recheck_ttl + 300;
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
            return suspend_enterprise(ctx, b, &org.id, "gone", may_suspend, now).await;
        }
        Err(_) => {
            // Asked again in a few minutes rather than at every sweep.
            ctx.db.binding_checked(&b.id, later).await?;
            return Ok(Recheck::Unchanged);
        }
    };
    if !about(Some(&record.credit_code), &org.credit_code) {
        // An answer about another enterprise says nothing about this one: malformed, asked again later.
        tracing::warn!(binding = %b.id, "registry answered about another enterprise");
        ctx.db.binding_checked(&b.id, later).await?;
        return Ok(Recheck::Unchanged);
    }
    let status = record.status.as_str();
    let active = record.status == EnterpriseStatus::Active;
    let lr = record.legal_representative.clone();
    let same = match ctx.db.person(&b.person_id).await? {
        Some(p) => is_person(ctx, &p, &lr.name, &lr.id_number),
        None => false,
    };
    let outcome = match (active, same) {
        (true, true) => "match",
        (true, false) => "not_representative",
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
    if !active {
        if b.status != BindingStatus::Active {
            // Still gone: asked again after the TTL.
            ctx.db.binding_checked(&b.id, now).await?;
            return Ok(Recheck::Unchanged);
        }
        return suspend_enterprise(ctx, b, &org.id, status, may_suspend, now).await;
    }
    if !same {
        if b.status != BindingStatus::Active {
            // Active again, but under someone else: this binding does not come back.
            ctx.db.binding_checked(&b.id, now).await?;
            return Ok(Recheck::Unchanged);
        }
        if !may_suspend {
            return Ok(Recheck::Braked);
        }
        suspend_one(ctx, b, "representative_changed", "registry", now).await?;
        return Ok(Recheck::Suspended);
    }
    if b.status != BindingStatus::Active {
        // Active again with the same legal representative: the registry's suspension is lifted. An
        // organisation an admin deactivated meanwhile stays so.
        // Restored automatically only from "no longer registered" (a contract 404): a cancellation
        // (注销) or revocation is final unless an admin restores it; and only for a holder still
        // active at level 2 or above (as binding needs).
        let holder = ctx.db.person(&b.person_id).await?;
        let holder_fit = holder
            .as_ref()
            .is_some_and(|p| p.status.is_active() && p.real_name_level >= 2);
        if b.reason.as_deref() != Some("gone") || !holder_fit {
            ctx.db.binding_checked(&b.id, now).await?;
            return Ok(Recheck::Unchanged);
        }
        if !rep_live(ctx, &b.rep_id).await? {
            // Suspended before suspensions were reversible (its representation revoked): stays over.
            ctx.db.end_binding(&b.id, "representative_changed", now).await?;
            return Ok(Recheck::Unchanged);
        }
        if !may_restore {
            return Ok(Recheck::RestoreBraked);
        }
        ctx.db
            .set_org_status_from(&org.id, &REGISTRY_STATUSES, OrgStatus::Active.as_str(), now)
            .await?;
        if ctx.db.restore_binding(&b.id, now).await? {
            ctx.audit(
                Event {
                    actor: "registry",
                    action: "org.binding.restore",
                    subject: &b.org_id,
                    address: "",
                    outcome: "success",
                },
                json!({ "binding": b.id, "representation": b.rep_id, "transaction_id": record.transaction_id }),
                now,
            )
            .await;
            if let Some(p) = ctx.db.person(&b.person_id).await? {
                ctx.notify(p.phone.as_deref(), "org_change", NOTICE, now).await;
            }
            return Ok(Recheck::Restored);
        }
        return Ok(Recheck::Unchanged);
    }
    ctx.db.binding_checked(&b.id, now).await?;
    Ok(Recheck::Unchanged)
}

/// The registry says the enterprise is gone, revoked or cancelled: the organisation becomes inactive
/// (every representation of it stops; `current_reps` reads only active organisations) and the binding
/// is suspended, both to be restored by a later `active` answer. An organisation an admin deactivated
/// keeps the admin's status.
async fn suspend_enterprise(
    ctx: &Ctx<'_>,
    b: &BindingRow,
    org_id: &str,
    status: &str,
    may_suspend: bool,
    now: i64,
) -> Result<Recheck, ProofingError> {
    if b.status != BindingStatus::Active {
        ctx.db.binding_checked(&b.id, now).await?;
        return Ok(Recheck::Unchanged);
    }
    if !may_suspend {
        return Ok(Recheck::Braked);
    }
    ctx.db
        .set_org_status_from(
            org_id,
            &[OrgStatus::Active, OrgStatus::Revoked, OrgStatus::Cancelled].map(OrgStatus::as_str),
            status,
            now,
        )
        .await?;
    suspend_one(ctx, b, status, "registry", now).await?;
    Ok(Recheck::Suspended)
}

/// The registry sweep: bindings due, while this node (`node`) holds the sweep's lease; suspends only
/// while the brake allows (at most `suspend_brake` registry suspensions per rolling 24 hours across the
/// cluster, and none once the brake is tripped, see `super::may_close`). Past it the sweep stops and
/// the brake latches until a super admin clears it (`super::braked`): a burst of suspensions is more
/// likely a wrong answer stream than that many enterprises closing at once.
pub async fn recheck_due(ctx: &Ctx<'_>, node: &str, now: i64) -> Result<(), ProofingError> {
    if !ctx.connectors().configured(Connector::Registry) {
        return Ok(());
    }
    for b in ctx.db.bindings_due(now - ctx.settings.recheck_ttl, 100).await? {
        if !super::still_holds(ctx, node).await? {
            tracing::warn!("registry sweep stopped: another node took the sweep's lease");
            break;
        }
        let may_suspend = super::may_close(ctx, "registry", now).await?;
        let may_restore = super::may_close(ctx, "restore", now).await?;
        // One binding that cannot be re-checked holds up no other.
        match recheck(ctx, &b, may_suspend, may_restore, now).await {
            Ok(Recheck::Braked) => {
                super::braked(ctx, "registry", "sweep", now).await;
                break;
            }
            Ok(Recheck::RestoreBraked) => {
                // Restores stop (the brake is latched) but the sweep goes on: an enterprise closing is
                // still suspended. The binding held back is asked again in a few minutes.
                super::braked(ctx, "restore", "sweep", now).await;
                ctx.db
                    .binding_checked(&b.id, now - ctx.settings.recheck_ttl + 300)
                    .await?;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(binding = %b.id, error = %e, "registry re-check failed; asked again later");
                let _ = ctx
                    .db
                    .binding_checked(&b.id, now - ctx.settings.recheck_ttl + 300)
                    .await;
            }
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

/// How long a pending appointment waits for its appointee.
pub const APPOINTMENT_TTL: i64 = 14 * 86_400;

/// What the appointer typed, masked for their own list: a phone as `139****9031`, an ID number as its
/// last four characters only. Never the appointee's name.
fn mask(raw: &str, phone: bool) -> String {
    let raw = raw.strip_prefix("+86").unwrap_or(raw);
    let chars: Vec<char> = raw.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    if phone {
        let head: String = chars.iter().take(3).collect();
        format!("{head}****{tail}")
    } else {
        format!("**************{tail}")
    }
}

/// A person's name as the appointer sees it once accepted: the first character, then one `*` for each
/// other (`张*`, `欧**`).
fn mask_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count().max(1);
            format!("{first}{}", "*".repeat(rest))
        }
        None => String::new(),
    }
}

/// The legal representative (or a manager) appoints an agent, and the legal representative a manager;
/// pending until the appointee accepts, for [`APPOINTMENT_TTL`]. The answer is the same whether or not
/// the ID number or phone belongs to a registered person (an appointment to nobody waits and expires),
/// and so is the work done (the same writes, an outbox row for nobody too); the appointer is shown the
/// appointee's name, masked, only once they accepted: finding people is not what this form is for.
pub async fn appoint(
    ctx: &Ctx<'_>,
    appointer: &PersonRow,
    new: NewAppointment<'_>,
    address: &str,
    now: i64,
) -> Result<AppointmentRow, ProofingError> {
    let role = Role::parse(new.role).ok_or(ProofingError::Invalid("role"))?;
    if !matches!(role, Role::Agent | Role::Manager) {
        return Err(ProofingError::Forbidden(
            "legal representatives are recorded from the registry; appoint managers or agents here".into(),
        ));
    }
    // Whoever appoints here is an active account at real-name level 2, whatever recorded their own
    // representation (an admin at the counter included): what they appoint is held to that at every use.
    if !appointer.status.is_active() {
        return Err(ProofingError::Forbidden("this account is not active".into()));
    }
    if appointer.real_name_level < 2 {
        return Err(ProofingError::NeedsLevel(2));
    }
    // What the appointer holds in force now: a representation under a suspended binding or a fallen
    // appointer appoints nobody.
    let own: Vec<Role> = crate::services::identity::reps_in_force(ctx.db, &appointer.id, now)
        .await
        .map_err(|e| ProofingError::Internal(anyhow::anyhow!("{e}")))?
        .into_iter()
        .filter(|(r, _)| r.org_id == new.org_id)
        .map(|(r, _)| r.role)
        .collect();
    if !own.iter().any(|r| r.may_appoint()) {
        return Err(ProofingError::Forbidden(
            "you do not represent this organisation".into(),
        ));
    }
    if role == Role::Manager && !own.contains(&Role::LegalRepresentative) {
        return Err(ProofingError::Forbidden(
            "only the legal representative appoints managers".into(),
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
    let (appointee, label) = if let Ok(id) = ResidentId::parse(raw) {
        let found = ctx
            .db
            .person_by_id_hash(&ctx.secrets.id_hash(id.as_str()))
            .await?;
        (found, mask(id.as_str(), false))
    } else if let Ok(phone) = Phone::parse(raw) {
        let found = ctx.db.person_by_phone(phone.as_str()).await?;
        (found, mask(phone.as_str(), true))
    } else {
        return Err(ProofingError::Invalid("appointee"));
    };
    if appointee.as_ref().is_some_and(|p| p.id == appointer.id) {
        return Err(ProofingError::Forbidden("nobody appoints themself".into()));
    }
    let appointee = appointee.filter(|p| p.status.is_active());
    let row = AppointmentRow {
        id: crate::ids::new_id(now, ctx.rng).to_string(),
        org_id: new.org_id.to_owned(),
        appointer_id: appointer.id.clone(),
        appointee_id: appointee.as_ref().map(|p| p.id.clone()),
        appointee_label: label,
        role: role.as_str().to_owned(),
        matters: serde_json::to_string(&matters).map_err(anyhow::Error::from)?,
        valid_until,
        status: AppointmentStatus::Pending,
        rep_id: None,
        created_at: now,
        expires_at: now + APPOINTMENT_TTL,
    };
    ctx.db.insert_appointment(&row).await?;
    ctx.audit(Event { actor: &format!("person:{}", appointer.id), action: "org.appoint", subject: new.org_id, address, outcome: "success" }, json!({ "appointment": row.id, "appointee": row.appointee_id, "role": row.role, "matters": matters, "valid_until": valid_until, "expires_at": row.expires_at }), now)
        .await;
    ctx.notify(appointer.phone.as_deref(), "org_change", NOTICE, now)
        .await;
    // The same work whether or not anyone has that number: a registered appointee's notice, or a row
    // that is never sent (sealed the same way), so the answer takes as long either way.
    ctx.notify_or_nobody(
        appointee.as_ref().and_then(|p| p.phone.as_deref()),
        "org_change",
        NOTICE,
        now,
    )
    .await;
    Ok(row)
}

/// The appointee accepts, at real-name level 2 or above, before the appointment expires: the
/// representation is recorded under the appointment rules.
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
        .filter(|a| {
            a.appointee_id.as_deref() == Some(person.id.as_str()) && a.status == AppointmentStatus::Pending
        })
        .ok_or(ProofingError::NotFound)?;
    if a.expired(now) {
        return Err(ProofingError::Expired);
    }
    if person.real_name_level < 2 {
        return Err(ProofingError::NeedsLevel(2));
    }
    let matters: Matters = serde_json::from_str(&a.matters).map_err(anyhow::Error::from)?;
    let role = Role::parse(&a.role).ok_or(ProofingError::Invalid("role"))?;
    let new = NewRepresentation {
        person_id: person.id.clone(),
        org_id: a.org_id.clone(),
        role,
        matters,
        valid_from: now,
        valid_until: a.valid_until,
    };
    // The representation and the appointment's acceptance are one transaction: never a representation
    // without the appointment that holds it (and lets either side end it).
    let by = format!("person:{}", person.id);
    if ctx
        .host
        .appoint(&a.id, &a.appointer_id, new, &by, now)
        .await
        .map_err(ProofingError::Internal)?
        .map_err(ProofingError::Forbidden)?
        .is_none()
    {
        // Ended meanwhile by the other side: nothing recorded.
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
        .filter(|a| a.appointee_id.as_deref() == Some(person.id.as_str()) || a.appointer_id == person.id)
        .filter(|a| matches!(a.status, AppointmentStatus::Pending | AppointmentStatus::Accepted))
        .ok_or(ProofingError::NotFound)?;
    if !ctx
        .db
        .decide_appointment(
            &a.id,
            a.status,
            AppointmentStatus::Ended,
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
    for id in [Some(&a.appointer_id), a.appointee_id.as_ref()]
        .into_iter()
        .flatten()
    {
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
    /// Organisations the person may appoint agents for now: (id, name, may also appoint managers).
    pub may_appoint: Vec<(String, String, bool)>,
    /// (appointment, organisation name, the other person's name, made by this person)
    pub appointments: Vec<(AppointmentRow, String, String, bool)>,
}

pub async fn overview(ctx: &Ctx<'_>, person: &PersonRow, now: i64) -> Result<Overview, ProofingError> {
    let mut bindings = Vec::new();
    for b in ctx.db.bindings(Some(&person.id), None, None, 50).await? {
        let org = ctx.db.org(&b.org_id).await?;
        bindings.push((b, org));
    }
    let current = crate::services::identity::reps_in_force(ctx.db, &person.id, now)
        .await
        .map_err(|e| ProofingError::Internal(anyhow::anyhow!("{e}")))?;
    let represents = current
        .iter()
        .map(|(r, o)| (o.name.clone(), o.credit_code.clone(), r.role.as_str().to_owned()))
        .collect();
    let mut may_appoint: Vec<(String, String, bool)> = Vec::new();
    // Only an active account at level 2 appoints (see [`appoint`]).
    let appoints = person.status.is_active() && person.real_name_level >= 2;
    for (r, o) in current
        .into_iter()
        .filter(|(r, _)| appoints && r.role.may_appoint())
    {
        let lr = r.role == Role::LegalRepresentative;
        match may_appoint.iter_mut().find(|(id, _, _)| *id == o.id) {
            Some(entry) => entry.2 |= lr,
            None => may_appoint.push((o.id, o.name, lr)),
        }
    }
    let mut appointments = Vec::new();
    for a in ctx.db.appointments_of(&person.id).await? {
        let org = ctx.db.org(&a.org_id).await?.map(|o| o.name).unwrap_or_default();
        let mine = a.appointer_id == person.id;
        // The appointer sees what they typed, masked, and once the appointee accepted, the accepting
        // person's name masked (`张*`): never a name before acceptance (the form finds nobody). The
        // appointee sees who appointed them.
        let other = match mine {
            true if a.status == AppointmentStatus::Accepted => {
                let name = match &a.appointee_id {
                    Some(id) => ctx.db.person(id).await?.map(|p| mask_name(&p.name)),
                    None => None,
                };
                match name {
                    Some(n) => format!("{} {n}", a.appointee_label),
                    None => a.appointee_label.clone(),
                }
            }
            true => a.appointee_label.clone(),
            false => ctx
                .db
                .person(&a.appointer_id)
                .await?
                .map(|p| p.name)
                .unwrap_or_default(),
        };
        appointments.push((a, org, other, mine));
    }
    Ok(Overview {
        represents,
        bindings,
        may_appoint,
        appointments,
    })
}
