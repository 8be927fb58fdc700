//! Legal persons and representation: organisations keyed by the unified social credit code, and the
//! natural persons who may act for them (legal representative, manager, agent), within matters and time.

use crate::app::App;
use crate::identity::{CreditCode, CreditCodeError};
use crate::store::clients::Client;
use crate::store::orgs::{Matters, Organisation, Representation, Role};

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
pub async fn credit_code(app: &App, raw: &str) -> Result<CreditCode, IdentityError> {
    match CreditCode::parse(raw) {
        Ok(code) => Ok(code),
        Err(e @ CreditCodeError::CheckCharacter { .. }) => {
            let normalised = raw.trim().to_ascii_uppercase();
            if app.db.credit_code_allowed(&normalised).await? {
                CreditCode::parse_allowing(raw, &|_| true).map_err(IdentityError::CreditCode)
            } else {
                Err(IdentityError::CreditCode(e))
            }
        }
        Err(e) => Err(IdentityError::CreditCode(e)),
    }
}

pub async fn add_org(
    app: &App,
    code: &str,
    name: &str,
    org_type: &str,
) -> Result<Organisation, IdentityError> {
    let code = credit_code(app, code).await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(IdentityError::Invalid(
            "an organisation name of 1 to 200 characters is required",
        ));
    }
    let org = Organisation {
        id: uuid::Uuid::now_v7().to_string(),
        credit_code: code.as_str().to_owned(),
        name: name.to_owned(),
        org_type: org_type.trim().to_owned(),
        status: "active".into(),
        version: 1,
    };
    match app.db.insert_org(&org, app.now()).await {
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

/// An administrator records a representation (e.g. from the business registry).
pub async fn grant(
    app: &App,
    new: NewRepresentation,
    granted_by: &str,
) -> Result<Representation, IdentityError> {
    check_window(&new)?;
    app.db
        .person(&new.person_id)
        .await?
        .ok_or(IdentityError::NotFound("person"))?;
    app.db
        .org(&new.org_id)
        .await?
        .ok_or(IdentityError::NotFound("organisation"))?;
    let rep = Representation {
        id: uuid::Uuid::now_v7().to_string(),
        person_id: new.person_id,
        org_id: new.org_id,
        role: new.role,
        matters: new.matters,
        valid_from: new.valid_from,
        valid_until: new.valid_until,
        granted_by: granted_by.to_owned(),
        revoked_at: None,
        version: 1,
    };
    app.db.insert_rep(&rep, app.now()).await?;
    Ok(rep)
}

/// A legal representative or manager appoints an agent, with no more matters and no longer than they
/// hold themselves. Agents cannot appoint anyone.
pub async fn appoint_agent(
    app: &App,
    appointer_id: &str,
    new: NewRepresentation,
    now: i64,
) -> Result<Representation, IdentityError> {
    if new.role != Role::Agent {
        return Err(IdentityError::Forbidden("only agents can be appointed this way"));
    }
    check_window(&new)?;
    let own = app
        .db
        .current_reps(appointer_id, now)
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .find(|r| r.org_id == new.org_id)
        .ok_or(IdentityError::Forbidden(
            "the appointer does not represent this organisation",
        ))?;
    if !own.role.may_appoint() {
        return Err(IdentityError::Forbidden("an agent may not appoint anyone"));
    }
    if !new.matters.within(&own.matters) {
        return Err(IdentityError::Forbidden(
            "an agent cannot get matters the appointer does not hold",
        ));
    }
    let ends_in_time = match (own.valid_until, new.valid_until) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(own_until), Some(until)) => until <= own_until,
    };
    if !ends_in_time {
        return Err(IdentityError::Forbidden(
            "an agent's appointment cannot outlast the appointer's",
        ));
    }
    grant(app, new, &format!("person:{appointer_id}")).await
}

/// The organisations a person may act for at this app, now.
pub async fn acting_options(
    app: &App,
    person_id: &str,
    client: &Client,
    now: i64,
) -> Result<Vec<(Representation, Organisation)>, IdentityError> {
    Ok(app
        .db
        .current_reps(person_id, now)
        .await?
        .into_iter()
        .filter(|(rep, _)| rep.matters.covers(&client.matters))
        .collect())
}

/// The representation a grant acts under, if it is still current and still covers the app.
pub async fn current_acting(
    app: &App,
    rep_id: &str,
    person_id: &str,
    client: &Client,
    now: i64,
) -> Result<Option<(Representation, Organisation)>, IdentityError> {
    Ok(acting_options(app, person_id, client, now)
        .await?
        .into_iter()
        .find(|(rep, _)| rep.id == rep_id))
}

/// The representatives an organisation has on record (not revoked), for administrators.
pub async fn representatives(app: &App, org_id: &str) -> Result<Vec<Representation>, IdentityError> {
    Ok(app.db.live_reps_of_org(org_id).await?)
}

/// An administrator revokes a representation of this organisation; from now on nobody acts under it.
pub async fn revoke_representation(
    app: &App,
    org_id: &str,
    rep_id: &str,
    now: i64,
) -> Result<Representation, IdentityError> {
    let rep = app
        .db
        .rep(rep_id)
        .await?
        .filter(|r| r.org_id == org_id && r.revoked_at.is_none())
        .ok_or(IdentityError::NotFound("representation"))?;
    if !app.db.revoke_rep(&rep.id, now).await? {
        return Err(IdentityError::NotFound("representation"));
    }
    Ok(rep)
}
