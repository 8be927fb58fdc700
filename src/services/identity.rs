//! Legal persons and representation: organisations keyed by the unified social credit code, and the
//! natural persons who may act for them (legal representative, manager, agent), within matters and time.

use crate::crypto::Random;
use crate::identity::{CreditCode, CreditCodeError};
use crate::services::admin::Admin;
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::orgs::{Matters, Organisation, Representation, Role, Standing};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid unified social credit code: {0}")]
    CreditCode(CreditCodeError),
    #[error("an organisation with this credit code already exists")]
    Conflict,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    #[error("invalid: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for IdentityError {
    fn from(e: sqlx::Error) -> Self {
        IdentityError::Internal(e.into())
    }
}

/// Parses a credit code; one that fails only its check character passes if an admin allow-listed it.
pub async fn credit_code(db: &Db, raw: &str) -> Result<CreditCode, IdentityError> {
    match CreditCode::parse(raw) {
        Ok(code) => Ok(code),
        Err(e @ CreditCodeError::CheckCharacter { .. }) => {
            let normalised = raw.trim().to_ascii_uppercase();
            if db.credit_code_allowed(&normalised).await? {
                CreditCode::parse_allowing(raw, &|_| true).map_err(IdentityError::CreditCode)
            } else {
                Err(IdentityError::CreditCode(e))
            }
        }
        Err(e) => Err(IdentityError::CreditCode(e)),
    }
}

pub async fn add_org(
    db: &Db,
    code: &str,
    name: &str,
    org_type: &str,
    now: i64,
    rng: &dyn Random,
) -> Result<Organisation, IdentityError> {
    let code = credit_code(db, code).await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(IdentityError::Invalid(
            "an organisation name of 1 to 200 characters is required",
        ));
    }
    let org = Organisation {
        id: crate::ids::new_id(now, rng).to_string(),
        credit_code: code.as_str().to_owned(),
        name: name.to_owned(),
        org_type: org_type.trim().to_owned(),
        status: crate::store::orgs::OrgStatus::Active,
        version: 1,
    };
    match db.insert_org(&org, now).await {
        Ok(()) => Ok(org),
        Err(e) if crate::store::is_unique_violation(&e) => Err(IdentityError::Conflict),
        Err(e) => Err(e.into()),
    }
}

pub struct NewRepresentation {
    pub person_id: String,
    pub org_id: String,
    pub role: Role,
    pub matters: Matters,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
}

pub fn check_window(new: &NewRepresentation) -> Result<(), IdentityError> {
    if new.valid_until.is_some_and(|u| u <= new.valid_from) {
        return Err(IdentityError::Invalid("valid_until must be after valid_from"));
    }
    if let Matters::Only(list) = &new.matters
        && (list.is_empty() || list.iter().any(|m| m.trim().is_empty() || m.len() > 64))
    {
        return Err(IdentityError::Invalid(
            "matters must be 'all' or a non-empty list of matter codes",
        ));
    }
    Ok(())
}

/// Records a representation as it stands in the business registry (the command line, and super admins
/// through [`appoint`]). No appointment rule applies here: callers that act for an administrator go
/// through [`appoint`].
pub async fn grant(
    db: &Db,
    new: NewRepresentation,
    granted_by: &str,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    insert(db, new, granted_by, None, now, rng).await
}

async fn insert(
    db: &Db,
    new: NewRepresentation,
    granted_by: &str,
    appointed_under: Option<String>,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    let rep = build(db, new, granted_by, appointed_under, now, rng).await?;
    db.insert_rep(&rep, now).await?;
    Ok(rep)
}

/// The representation `new` describes, checked but not recorded.
async fn build(
    db: &Db,
    new: NewRepresentation,
    granted_by: &str,
    appointed_under: Option<String>,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    check_window(&new)?;
    db.person(&new.person_id)
        .await?
        .ok_or(IdentityError::NotFound("person"))?;
    db.org(&new.org_id)
        .await?
        .ok_or(IdentityError::NotFound("organisation"))?;
    let rep = Representation {
        id: crate::ids::new_id(now, rng).to_string(),
        person_id: new.person_id,
        org_id: new.org_id,
        role: new.role,
        matters: new.matters,
        valid_from: new.valid_from,
        valid_until: new.valid_until,
        granted_by: granted_by.to_owned(),
        revoked_at: None,
        version: 1,
        appointed_under,
    };
    Ok(rep)
}

/// The refusal of a representation for the administrator who records it.
pub const SELF_APPOINTMENT: &str = "nobody records a representation for themself";
/// The refusal of a registry record (any role, no appointer) by someone other than a super admin.
pub const NEEDS_APPOINTER: &str =
    "a counter clerk records only an agent appointed by a legal representative or manager (appointed_by)";

/// The one rule for recording who may act for an organisation, for the admin API and the console alike.
/// A super admin records what the business registry says (any role, no appointer). Everyone else, a
/// counter clerk, records only an agent appointment a representative (`appointed_by`, a person id) makes
/// in person, under [`appoint_agent`]'s rules. Nobody records a representation for themself, neither as
/// the appointee nor as the appointer naming themself.
pub async fn appoint(
    db: &Db,
    by: &Admin,
    new: NewRepresentation,
    appointed_by: Option<&str>,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    if !(by.can_manage_orgs() || by.can_record_appointments()) {
        return Err(IdentityError::Forbidden("representation.create"));
    }
    if by.actor == format!("person:{}", new.person_id) {
        return Err(IdentityError::Forbidden(SELF_APPOINTMENT));
    }
    // Only a super admin records an appointment no one else witnessed: a clerk names another appointer.
    if !by.can_manage_orgs() && appointed_by.is_some_and(|a| by.actor == format!("person:{a}")) {
        return Err(IdentityError::Forbidden(SELF_APPOINTMENT));
    }
    match appointed_by {
        None if by.can_manage_orgs() => grant(db, new, &by.actor, now, rng).await,
        None => Err(IdentityError::Forbidden(NEEDS_APPOINTER)),
        Some(appointer) => appoint_agent(db, appointer, new, now, rng).await,
    }
}

/// Whether a representation ending at `inner` ends no later than one ending at `outer` (`None`: open).
fn ends_within(inner: Option<i64>, outer: Option<i64>) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(outer), Some(inner)) => inner <= outer,
    }
}

/// A legal representative or manager appoints an agent, with no more matters and no longer than they
/// hold themselves, under one of their own current representations of this organisation (recorded as
/// the agent's `appointed_under`). Agents cannot appoint anyone; nobody appoints themself.
pub async fn appoint_agent(
    db: &Db,
    appointer_id: &str,
    new: NewRepresentation,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    let rep = plan_agent(db, appointer_id, new, now, rng).await?;
    db.insert_rep(&rep, now).await?;
    Ok(rep)
}

/// What [`appoint_agent`] records, checked under its rules but not recorded (the caller records it,
/// with what else must happen in the same transaction).
pub async fn plan_agent(
    db: &Db,
    appointer_id: &str,
    new: NewRepresentation,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    if new.role != Role::Agent {
        return Err(IdentityError::Forbidden("only agents can be appointed this way"));
    }
    if appointer_id == new.person_id {
        return Err(IdentityError::Forbidden("an appointer does not appoint themself"));
    }
    check_window(&new)?;
    let own: Vec<Representation> = reps_in_force(db, appointer_id, now)
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| r.org_id == new.org_id)
        .collect();
    if own.is_empty() {
        return Err(IdentityError::Forbidden(
            "the appointer does not represent this organisation",
        ));
    }
    let appointing: Vec<&Representation> = own.iter().filter(|r| r.role.may_appoint()).collect();
    if appointing.is_empty() {
        return Err(IdentityError::Forbidden("an agent may not appoint anyone"));
    }
    let covering: Vec<&Representation> = appointing
        .into_iter()
        .filter(|r| new.matters.within(&r.matters))
        .collect();
    if covering.is_empty() {
        return Err(IdentityError::Forbidden(
            "an agent cannot get matters the appointer does not hold",
        ));
    }
    let under = covering
        .into_iter()
        .find(|r| ends_within(new.valid_until, r.valid_until))
        .ok_or(IdentityError::Forbidden(
            "an agent's appointment cannot outlast the appointer's",
        ))?
        .id
        .clone();
    build(db, new, &format!("person:{appointer_id}"), Some(under), now, rng).await
}

/// A legal representative appoints a manager (who may then appoint agents), under one of their own
/// current legal-representative representations of this organisation (recorded as `appointed_under`):
/// no more matters and no longer than they hold themselves, never themself. Managers and agents do
/// not appoint managers.
pub async fn appoint_manager(
    db: &Db,
    appointer_id: &str,
    new: NewRepresentation,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    let rep = plan_manager(db, appointer_id, new, now, rng).await?;
    db.insert_rep(&rep, now).await?;
    Ok(rep)
}

/// What [`appoint_manager`] records, checked under its rules but not recorded.
pub async fn plan_manager(
    db: &Db,
    appointer_id: &str,
    new: NewRepresentation,
    now: i64,
    rng: &dyn Random,
) -> Result<Representation, IdentityError> {
    if new.role != Role::Manager {
        return Err(IdentityError::Forbidden(
            "only managers can be appointed this way",
        ));
    }
    if appointer_id == new.person_id {
        return Err(IdentityError::Forbidden("an appointer does not appoint themself"));
    }
    check_window(&new)?;
    let under = reps_in_force(db, appointer_id, now)
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| r.org_id == new.org_id && r.role == Role::LegalRepresentative)
        .find(|r| new.matters.within(&r.matters) && ends_within(new.valid_until, r.valid_until))
        .ok_or(IdentityError::Forbidden(
            "only the legal representative appoints managers, within their own authority",
        ))?
        .id;
    build(db, new, &format!("person:{appointer_id}"), Some(under), now, rng).await
}

/// Whether an appointed agent's representation still sits inside its appointer's authority at `now`:
/// the appointer's representation (`appointer`, loaded by `agent.appointed_under`) is current, of the
/// same organisation, of a role that appoints, held by someone else, and covers the agent's matters and
/// end. A representation nobody appointed (recorded from the registry) depends on nothing.
pub fn within_appointer(agent: &Representation, appointer: Option<&Representation>, now: i64) -> bool {
    let Some(under) = &agent.appointed_under else {
        return true;
    };
    appointer.is_some_and(|a| {
        &a.id == under
            && a.org_id == agent.org_id
            && a.person_id != agent.person_id
            && a.role.may_appoint()
            && a.is_current(now)
            && agent.matters.within(&a.matters)
            && ends_within(agent.valid_until, a.valid_until)
    })
}

/// The organisations a person may act for at this app, now.
///
/// An appointed agent's authority is re-checked here, at every use, against the appointer's
/// representation as it is now ([`within_appointer`]), rather than cascading revocations and edits to
/// the agents when the appointer changes. Checked at use, it holds whatever ends or narrows the
/// appointer: a revocation or an edit through the API, the console or the command line, and the
/// appointer's validity simply running out, which no write ever announces. Every place that lets a
/// person act for an organisation comes here: the act-as page and its answer, consent, and each
/// refresh and userinfo call (through [`current_acting`]).
pub async fn acting_options(
    db: &Db,
    person_id: &str,
    client: &Client,
    now: i64,
) -> Result<Vec<(Representation, Organisation)>, IdentityError> {
    Ok(reps_in_force(db, person_id, now)
        .await?
        .into_iter()
        .filter(|(rep, _)| rep.matters.covers(&client.matters))
        .collect())
}

/// A person's current representations that give authority now, for any app: each [`stands`], and so
/// does every appointer above it ([`chain_holds`]). What a person may act under, and appoint under.
pub async fn reps_in_force(
    db: &Db,
    person_id: &str,
    now: i64,
) -> Result<Vec<(Representation, Organisation)>, IdentityError> {
    let mut options = Vec::new();
    for (rep, org) in db.current_reps(person_id, now).await? {
        let Some(standing) = stands(db, &rep.id).await? else {
            continue;
        };
        if chain_holds(db, &rep, &standing, now).await? {
            options.push((rep, org));
        }
    }
    Ok(options)
}

/// Whether `rep` gives authority now under the rule acting uses ([`reps_in_force`]): current, of an
/// active organisation, no binding of it held, its holder standing, and every appointer above it.
pub async fn in_force(db: &Db, rep: &Representation, now: i64) -> Result<bool, IdentityError> {
    Ok(reps_in_force(db, &rep.person_id, now)
        .await?
        .iter()
        .any(|(r, _)| r.id == rep.id))
}

/// Whether a representation's holder still carries it: the holder's account is active (whatever made
/// the representation: a locked or disabled account acts for nobody), no binding of it is suspended,
/// and one made online (bound on the account page, or accepted from an appointment there) is held at
/// real-name level 2 or above — a level lowered since it was made stops it here, at every use, and with
/// it everyone appointed under it.
async fn stands(db: &Db, rep_id: &str) -> Result<Option<Standing>, IdentityError> {
    let Some(s) = db.rep_standing(rep_id).await? else {
        return Ok(None);
    };
    let carried = !s.binding_held && s.holder_status.is_active() && (!s.online || s.holder_level >= 2);
    Ok(carried.then_some(s))
}

/// Whether every appointer above `rep` still covers the one below ([`within_appointer`]) and still
/// [`stands`], up to a representation nobody appointed. An appointer is held to level 2 too when the
/// appointment below was made online (accepted on the account page), whatever recorded the appointer's
/// own representation (an admin at the counter included): an agent a manager appointed stops when the
/// legal representative who appointed that manager stops, when either's account is locked, or when
/// either's real-name level drops below 2.
async fn chain_holds(
    db: &Db,
    rep: &Representation,
    below: &Standing,
    now: i64,
) -> Result<bool, IdentityError> {
    let mut below = (rep.clone(), below.clone());
    for _ in 0..4 {
        let Some(under) = &below.0.appointed_under else {
            return Ok(true);
        };
        let appointer = db.rep(under).await?;
        if !within_appointer(&below.0, appointer.as_ref(), now) {
            return Ok(false);
        }
        let Some(a) = appointer else {
            return Ok(false);
        };
        match stands(db, &a.id).await? {
            Some(s) if !below.1.appointed_online || s.holder_level >= 2 => below = (a, s),
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// The representation a grant acts under, if it is still current and still covers the app.
pub async fn current_acting(
    db: &Db,
    rep_id: &str,
    person_id: &str,
    client: &Client,
    now: i64,
) -> Result<Option<(Representation, Organisation)>, IdentityError> {
    Ok(acting_options(db, person_id, client, now)
        .await?
        .into_iter()
        .find(|(rep, _)| rep.id == rep_id))
}

/// An edit of an appointed agent stays inside the appointer's authority: still an agent, no more
/// matters and no later end than the appointer's representation (an edit past it would leave an agent
/// who can act for no one, see [`within_appointer`]).
pub async fn check_edit(db: &Db, edited: &Representation) -> Result<(), IdentityError> {
    let Some(under) = &edited.appointed_under else {
        return Ok(());
    };
    if edited.role != Role::Agent {
        return Err(IdentityError::Forbidden(
            "an appointed agent stays an agent; the registry's record makes a manager",
        ));
    }
    let appointer = db.rep(under).await?;
    let fits = appointer
        .is_some_and(|a| edited.matters.within(&a.matters) && ends_within(edited.valid_until, a.valid_until));
    if !fits {
        return Err(IdentityError::Forbidden(
            "an agent cannot get matters or time the appointer does not hold",
        ));
    }
    Ok(())
}

/// The representatives an organisation has on record (not revoked), for administrators.
pub async fn representatives(db: &Db, org_id: &str) -> Result<Vec<Representation>, IdentityError> {
    Ok(db.live_reps_of_org(org_id).await?)
}

/// An administrator revokes a representation of this organisation; from now on nobody acts under it.
pub async fn revoke_representation(
    db: &Db,
    org_id: &str,
    rep_id: &str,
    now: i64,
) -> Result<Representation, IdentityError> {
    let rep = db
        .rep(rep_id)
        .await?
        .filter(|r| r.org_id == org_id && r.revoked_at.is_none())
        .ok_or(IdentityError::NotFound("representation"))?;
    if !db.revoke_rep(&rep.id, now).await? {
        return Err(IdentityError::NotFound("representation"));
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(id: &str, person: &str, role: Role, matters: &[&str], until: Option<i64>) -> Representation {
        Representation {
            id: id.into(),
            person_id: person.into(),
            org_id: "org".into(),
            role,
            matters: if matters.is_empty() {
                Matters::all()
            } else {
                Matters::Only(matters.iter().map(|m| (*m).to_owned()).collect())
            },
            valid_from: 0,
            valid_until: until,
            granted_by: "registry".into(),
            revoked_at: None,
            version: 1,
            appointed_under: None,
        }
    }

    #[test]
    fn an_agent_acts_only_inside_its_appointers_current_authority() {
        let manager = rep("m", "bob", Role::Manager, &["A", "B"], Some(100));
        let agent = Representation {
            appointed_under: Some("m".into()),
            ..rep("a", "alice", Role::Agent, &["A"], Some(50))
        };
        assert!(within_appointer(&agent, Some(&manager), 10));
        assert!(!within_appointer(&agent, None, 10), "appointer gone");
        let revoked = Representation {
            revoked_at: Some(5),
            ..manager.clone()
        };
        assert!(!within_appointer(&agent, Some(&revoked), 10));
        assert!(!within_appointer(&agent, Some(&manager), 100), "appointer lapsed");
        let narrowed = rep("m", "bob", Role::Manager, &["B"], Some(100));
        assert!(!within_appointer(&agent, Some(&narrowed), 10));
        let shortened = rep("m", "bob", Role::Manager, &["A"], Some(40));
        assert!(!within_appointer(&agent, Some(&shortened), 10));
        let demoted = rep("m", "bob", Role::Agent, &["A", "B"], Some(100));
        assert!(!within_appointer(&agent, Some(&demoted), 10));
        let other = rep("x", "bob", Role::Manager, &[], None);
        assert!(
            !within_appointer(&agent, Some(&other), 10),
            "another representation"
        );
        let registry = rep("r", "alice", Role::Agent, &["A"], None);
        assert!(within_appointer(&registry, None, 10), "nobody appointed it");
    }
}
