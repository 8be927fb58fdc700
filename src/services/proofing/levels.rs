//! Real-name levels online. Level 1 is self-declared with a verified phone; level 2 is a population
//! base database match plus a carrier three-element match; level 3 is a face verification
//! ([`super::face`]) or the counter. A population record later found cancelled or deceased (asked again
//! after `recheck_ttl`) locks the account and ends everything it holds.

use serde_json::json;

use super::connectors::{Connector, RecordState, Upstream};
use super::{Ctx, Event, ProofingError};
use crate::identity::ResidentId;
use crate::store::persons::{PersonRow, PersonStatus};
use crate::store::proofing::CheckRow;

/// The real-name method recorded for a level reached online.
pub const METHOD_ONLINE: &str = "online:population+carrier";
pub const METHOD_FACE: &str = "online:face";
/// Who verified, in `real_name_verified_by`.
pub const BY_ONLINE: &str = "proofing";

/// What the account page shows: the level, and which steps are open here.
#[derive(Debug, Clone)]
pub struct Standing {
    pub level: i64,
    pub phone_verified: bool,
    /// Level 2 can be reached online here (population and carrier configured).
    pub online: bool,
    /// Level 3 can be reached online here (face configured).
    pub face: bool,
}

pub fn standing(ctx: &Ctx<'_>, person: &PersonRow) -> Standing {
    let c = ctx.connectors();
    Standing {
        level: person.real_name_level,
        phone_verified: person.phone_verified && person.phone.is_some(),
        online: c.configured(Connector::Population) && c.configured(Connector::Carrier),
        face: c.configured(Connector::Face),
    }
}

/// The person's ID number, decrypted for a call to an authority (never logged, never stored elsewhere).
pub(super) fn id_number(ctx: &Ctx<'_>, person: &PersonRow) -> Result<ResidentId, ProofingError> {
    let plain = ctx
        .secrets
        .decrypt(&person.id_number_enc, person.id.as_bytes())
        .map_err(|e| ProofingError::Internal(e.context("stored ID number unreadable")))?;
    ResidentId::parse(&plain)
        .map_err(|e| ProofingError::Internal(anyhow::anyhow!("stored ID number invalid: {}", e.code())))
}

/// Records a check (connector, outcome, transaction id), never the answer.
pub(super) async fn record_check(
    ctx: &Ctx<'_>,
    person_id: &str,
    connector: Connector,
    outcome: &str,
    transaction_id: Option<&str>,
    address: &str,
    now: i64,
) -> Result<(), ProofingError> {
    ctx.db
        .insert_proofing_check(&CheckRow {
            id: crate::ids::new_id(now, ctx.rng).to_string(),
            person_id: person_id.to_owned(),
            connector: connector.as_str().to_owned(),
            outcome: outcome.to_owned(),
            transaction_id: transaction_id.map(str::to_owned),
            address: address.to_owned(),
            at: now,
        })
        .await?;
    Ok(())
}

/// An upstream failure as the person sees it: not configured, or try later.
pub(super) fn unavailable(connector: Connector, e: Upstream) -> ProofingError {
    match e {
        Upstream::NotConfigured => ProofingError::NotConfigured(connector),
        _ => ProofingError::Unavailable(connector),
    }
}

/// Raises a person to level 2: the population base database must know this name with this ID number
/// in a normal record, and the carrier must confirm the verified phone is registered to them. Each
/// check is recorded; a mismatch says which check failed. A record found cancelled or deceased locks
/// the account at once. A person already at level 2 or above keeps their level (and evidence).
pub async fn raise_online(
    ctx: &Ctx<'_>,
    person: &PersonRow,
    address: &str,
    now: i64,
) -> Result<i64, ProofingError> {
    if person.real_name_level >= 2 {
        return Ok(person.real_name_level);
    }
    let phone = match (&person.phone, person.phone_verified) {
        (Some(p), true) => p.clone(),
        _ => return Err(ProofingError::NeedsPhone),
    };
    let c = ctx.connectors();
    for connector in [Connector::Population, Connector::Carrier] {
        if !c.configured(connector) {
            return Err(ProofingError::NotConfigured(connector));
        }
    }
    if !super::reserve_attempt(ctx, &person.id, address, now).await? {
        return Err(ProofingError::Throttled);
    }
    let id = id_number(ctx, person)?;
    let actor = format!("person:{}", person.id);

    let population = match c.population(&person.name, id.expose()).await {
        Ok(a) => a,
        Err(e) => {
            record_check(
                ctx,
                &person.id,
                Connector::Population,
                "unavailable",
                None,
                address,
                now,
            )
            .await?;
            return Err(unavailable(Connector::Population, e));
        }
    };
    let state = population.state.unwrap_or(RecordState::Normal);
    let outcome = match (population.matched, state) {
        (false, _) => "no_match",
        (true, RecordState::Normal) => "match",
        (true, s) => s.as_str(),
    };
    record_check(
        ctx,
        &person.id,
        Connector::Population,
        outcome,
        Some(&population.transaction_id),
        address,
        now,
    )
    .await?;
    if !population.matched {
        ctx.audit(
            Event {
                actor: &actor,
                action: "proofing.online",
                subject: &person.id,
                address,
                outcome: "failure",
            },
            json!({ "failed": "population", "transaction_id": population.transaction_id }),
            now,
        )
        .await;
        return Err(ProofingError::Mismatch(Connector::Population));
    }
    if state != RecordState::Normal {
        close_record(ctx, person, state, &population.transaction_id, address, now).await?;
        return Err(ProofingError::RecordClosed);
    }

    let carrier = match c.carrier(&person.name, id.expose(), &phone).await {
        Ok(a) => a,
        Err(e) => {
            record_check(
                ctx,
                &person.id,
                Connector::Carrier,
                "unavailable",
                None,
                address,
                now,
            )
            .await?;
            return Err(unavailable(Connector::Carrier, e));
        }
    };
    let outcome = if carrier.matched { "match" } else { "no_match" };
    record_check(
        ctx,
        &person.id,
        Connector::Carrier,
        outcome,
        Some(&carrier.transaction_id),
        address,
        now,
    )
    .await?;
    if !carrier.matched {
        ctx.audit(
            Event {
                actor: &actor,
                action: "proofing.online",
                subject: &person.id,
                address,
                outcome: "failure",
            },
            json!({ "failed": "carrier", "transaction_id": carrier.transaction_id }),
            now,
        )
        .await;
        return Err(ProofingError::Mismatch(Connector::Carrier));
    }

    ctx.db
        .put_evidence(&person.id, "population", &population.transaction_id, now)
        .await?;
    ctx.db
        .put_evidence(&person.id, "carrier", &carrier.transaction_id, now)
        .await?;
    ctx.db.set_population_state(&person.id, "normal", now).await?;
    ctx.db
        .set_real_name(&person.id, 2, METHOD_ONLINE, BY_ONLINE, now)
        .await?;
    ctx.audit(
        Event {
            actor: &actor,
            action: "proofing.level",
            subject: &person.id,
            address,
            outcome: "success",
        },
        json!({
            "real_name_level": 2,
            "checks": [
                { "check": "population", "transaction_id": population.transaction_id },
                { "check": "carrier", "transaction_id": carrier.transaction_id },
            ],
        }),
        now,
    )
    .await;
    Ok(2)
}

/// A population record found cancelled or deceased: the account is locked and cut off everywhere.
async fn close_record(
    ctx: &Ctx<'_>,
    person: &PersonRow,
    state: RecordState,
    transaction_id: &str,
    address: &str,
    now: i64,
) -> Result<(), ProofingError> {
    ctx.db
        .set_population_state(&person.id, state.as_str(), now)
        .await?;
    ctx.db
        .set_person_status(&person.id, PersonStatus::Locked, now)
        .await?;
    ctx.host.end_everything(&person.id, now).await?;
    ctx.audit(
        Event {
            actor: BY_ONLINE,
            action: "person.lock",
            subject: &person.id,
            address,
            outcome: "success",
        },
        json!({ "reason": "population_record", "state": state.as_str(), "transaction_id": transaction_id }),
        now,
    )
    .await;
    tracing::warn!(person = %person.id, state = state.as_str(), "population record closed; account locked");
    Ok(())
}

/// Asks the population base database again about a person proofed online whose last answer is older
/// than the TTL. Returns true when the account was locked. An unavailable database changes nothing
/// (the next re-check asks again).
/// `may_lock` false (the sweep's brake) leaves an account that would be locked as it is and returns
/// `Err(ProofingError::Throttled)` for the sweep to stop at.
pub async fn recheck(
    ctx: &Ctx<'_>,
    person: &PersonRow,
    may_lock: bool,
    now: i64,
) -> Result<bool, ProofingError> {
    if !person.status.is_active() {
        return Ok(false);
    }
    match ctx.db.population_checked_at(&person.id).await? {
        Some(at) if now - at >= ctx.settings.recheck_ttl => {}
        _ => return Ok(false),
    }
    let id = id_number(ctx, person)?;
    let answer = match ctx.connectors().population(&person.name, id.expose()).await {
        Ok(a) => a,
        Err(_) => {
            // Asked again in a few minutes, behind the others due, rather than first at every sweep.
            ctx.db
                .population_checked(&person.id, now - ctx.settings.recheck_ttl + 300)
                .await?;
            return Ok(false);
        }
    };
    let state = answer.state.unwrap_or(RecordState::Normal);
    let outcome = match (answer.matched, state) {
        (false, _) => "no_match",
        (true, RecordState::Normal) => "match",
        (true, s) => s.as_str(),
    };
    if answer.matched && state != RecordState::Normal && !may_lock {
        // Braked: nothing recorded, the record stays due and is asked again at the next sweep.
        return Err(ProofingError::Throttled);
    }
    record_check(
        ctx,
        &person.id,
        Connector::Population,
        outcome,
        Some(&answer.transaction_id),
        "recheck",
        now,
    )
    .await?;
    if answer.matched && state != RecordState::Normal {
        close_record(ctx, person, state, &answer.transaction_id, "recheck", now).await?;
        return Ok(true);
    }
    // A record that no longer matches is left for a person to look at; a normal one is good for a TTL.
    ctx.db.set_population_state(&person.id, "normal", now).await?;
    Ok(false)
}

/// The background re-check: a few persons due at a time, while this node (`node`) holds the sweep's
/// lease; locks only while the brake allows (see `super::may_close`).
pub async fn recheck_due(ctx: &Ctx<'_>, node: &str, now: i64) -> Result<(), ProofingError> {
    if !ctx.connectors().configured(Connector::Population) {
        return Ok(());
    }
    for person_id in ctx.db.population_due(now - ctx.settings.recheck_ttl, 100).await? {
        if !super::still_holds(ctx, node).await? {
            tracing::warn!("population sweep stopped: another node took the sweep's lease");
            break;
        }
        let may_lock = super::may_close(ctx, "population", now).await?;
        // One record that cannot be re-checked holds up no other.
        let result = match ctx.db.person(&person_id).await {
            Ok(Some(person)) => recheck(ctx, &person, may_lock, now).await,
            Ok(None) => Ok(false),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(_) => {}
            Err(ProofingError::Throttled) => {
                // A burst of locks from one answer stream stops here (see `super::braked`).
                super::braked(ctx, "population", "sweep", now).await;
                break;
            }
            Err(e) => {
                tracing::warn!(person = %person_id, error = %e, "population re-check failed; asked again later");
                let _ = ctx
                    .db
                    .population_checked(&person_id, now - ctx.settings.recheck_ttl + 300)
                    .await;
            }
        }
    }
    Ok(())
}

/// What `/account/verify` shows, after re-checking a population record that is due: `None` when the
/// re-check found it closed and locked the account.
pub async fn page(ctx: &Ctx<'_>, person: &PersonRow, now: i64) -> Result<Option<Standing>, ProofingError> {
    // The same brake as the sweep's: a wrong answer stream does not lock everyone who opens the page.
    let may_lock = super::may_close(ctx, "population", now).await?;
    match recheck(ctx, person, may_lock, now).await {
        Ok(true) => return Ok(None),
        Ok(false) => {}
        Err(ProofingError::Throttled) => super::braked(ctx, "population", "page", now).await,
        Err(e) => return Err(e),
    }
    Ok(Some(standing(ctx, person)))
}
