//! Who is calling the admin API with an access token, checked against the state of things now (the token
//! says what was true when it was issued). A resource server accepts only tokens issued for it (RFC 9068
//! §4, `aud`): a person's token is accepted only when the console, yunid's own client, obtained it with
//! two factors; any other app's token is refused, whoever signed in to it. Automation tokens hold only the
//! admin scopes their client still has. A disabled client, a person no longer active, a role no longer
//! held: refused at the next call, not when the token expires.

use serde_json::Value;

use crate::services::admin::{Admin, Role};
use crate::services::console;
use crate::services::oidc::scope::{AllowedFor, ScopeSet};
use crate::services::oidc::tokens::AccessToken;
use crate::store::Db;
use crate::store::clients::Client;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The token cannot be used here at all (RFC 6750 §3.1 `invalid_token`: 401).
    #[error("{0}")]
    InvalidToken(&'static str),
    /// A valid token whose bearer may not administer (403).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Internal(e.into())
    }
}

/// The administrator behind a verified, unrevoked access token.
pub async fn admin_of(db: &Db, at: &AccessToken) -> Result<Admin, Refusal> {
    let client = db.client(&at.client_id).await?.ok_or(Refusal::InvalidToken(
        "the client this token was issued to is unknown",
    ))?;
    if client.disabled {
        return Err(Refusal::InvalidToken(
            "the client this token was issued to is disabled",
        ));
    }
    let admin = match at.family_id.as_deref() {
        None => automation(&client, at)?,
        Some(family) => person(db, &client, at, family).await?,
    };
    if admin.roles.is_empty() {
        return Err(Refusal::Forbidden("no administrative role"));
    }
    Ok(admin)
}

/// A client-credentials token: the roles of the admin scopes it carries that its client still has, as
/// long as the client may still use the grant.
fn automation(client: &Client, at: &AccessToken) -> Result<Admin, Refusal> {
    if at.sub != client.id || !client.grant_types.iter().any(|g| g == "client_credentials") {
        return Err(Refusal::InvalidToken(
            "this token was not issued for the admin API",
        ));
    }
    let scope = ScopeSet::parse(at.claims.get("scope").and_then(Value::as_str).unwrap_or(""));
    let roles = scope
        .allowed_for(client)
        .iter()
        .filter_map(Role::from_scope)
        .collect();
    Ok(Admin {
        actor: format!("client:{}", client.id),
        roles,
    })
}

/// Whether the token's audience is the console alone (or the console as authorized party).
fn for_console(at: &AccessToken) -> bool {
    let aud_ok = match at.claims.get("aud") {
        Some(Value::String(a)) => a == console::CLIENT_ID,
        Some(Value::Array(list)) => {
            list.len() == 1 && list.first().and_then(Value::as_str) == Some(console::CLIENT_ID)
        }
        _ => false,
    };
    aud_ok && at.client_id == console::CLIENT_ID
}

/// A person's token: obtained by the console, two factors, the person active and acting in their own
/// name, roles as held now.
async fn person(db: &Db, client: &Client, at: &AccessToken, family_id: &str) -> Result<Admin, Refusal> {
    if !console::is_console(client) || !for_console(at) {
        return Err(Refusal::InvalidToken(
            "this token was not issued for the admin API",
        ));
    }
    let family = db
        .family(family_id)
        .await?
        .filter(|f| f.client_id == client.id)
        .ok_or(Refusal::InvalidToken("unknown grant"))?;
    let person_id = family
        .person_id
        .as_deref()
        .filter(|p| *p == at.sub)
        .ok_or(Refusal::InvalidToken("unknown grant"))?;
    if family.acting_rep_id.is_some() || at.claims.get("act").is_some() {
        return Err(Refusal::Forbidden(
            "administration is done in one's own name, not for an organisation",
        ));
    }
    let acr = at
        .claims
        .get("acr")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(1);
    if acr.min(family.acr) < console::REQUIRED_ACR {
        return Err(Refusal::Forbidden("administration needs a two-factor sign-in"));
    }
    let active = db.person(person_id).await?.is_some_and(|p| p.status.is_active());
    if !active {
        return Err(Refusal::InvalidToken("the person's account is not active"));
    }
    let roles = db
        .admin_roles_of(person_id)
        .await?
        .iter()
        .filter_map(|(role, dept)| Role::parse(role, dept))
        .collect();
    Ok(Admin {
        actor: format!("person:{person_id}"),
        roles,
    })
}
