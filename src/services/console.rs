//! The admin console as a relying party of yunid itself: its client registration, and the checks its
//! callback makes on the ID token, the same ones any relying party makes (OIDC Core §3.1.3.7).

use serde_json::Value;

use crate::config::Config;
use crate::crypto::{self, Secrets};
use crate::keys::{Alg, KeySet};
use crate::store::Db;
use crate::store::clients::{AuthMethod, Client, SubjectType};

/// The console's client id (fixed: every node and every restart means the same client).
pub const CLIENT_ID: &str = "yunid-console";

/// Administration needs two factors or a user-verified passkey.
pub const REQUIRED_ACR: i64 = 2;

pub fn redirect_uri(config: &Config) -> String {
    config.endpoint("/admin/callback")
}

pub fn post_logout_redirect_uri(config: &Config) -> String {
    config.endpoint("/admin")
}

/// The console's own secret (derived, never stored).
pub fn secret(secrets: &Secrets) -> String {
    secrets.internal_client_secret(CLIENT_ID)
}

/// Whether a client is yunid's own console (first party: no consent page).
pub fn is_console(client: &Client) -> bool {
    client.id == CLIENT_ID
}

fn registration(config: &Config, secrets: &Secrets) -> Client {
    Client {
        id: CLIENT_ID.to_owned(),
        name: "yunid 管理控制台 / admin console".to_owned(),
        secret_hash: Some(crypto::token_hash(&secret(secrets))),
        redirect_uris: vec![redirect_uri(config)],
        post_logout_redirect_uris: vec![post_logout_redirect_uri(config)],
        scopes: vec!["openid".to_owned()],
        grant_types: vec!["authorization_code".to_owned()],
        auth_method: AuthMethod::ClientSecretBasic,
        jwks: None,
        jwks_uri: None,
        id_token_alg: Alg::RS256,
        // The console reads roles by person id: the subject is the person's own id.
        subject_type: SubjectType::Public,
        sector: config.issuer.host_str().unwrap_or("yunid").to_owned(),
        backchannel_logout_uri: None,
        min_acr: REQUIRED_ACR,
        disabled: false,
        matters: Vec::new(),
        department: String::new(),
        version: 1,
    }
}

/// Registers the console client, or brings it in line with this node's issuer and secret. Nodes
/// starting together may race to insert it: the loser finds it there and aligns it.
/// Called at start and before each console sign-in (an admin may have rotated or disabled it through
/// the API: the console puts it back).
pub async fn ensure_client(db: &Db, config: &Config, secrets: &Secrets, now: i64) -> anyhow::Result<()> {
    let wanted = registration(config, secrets);
    match db.client(CLIENT_ID).await? {
        None => match db.insert_client(&wanted, now).await {
            Ok(()) => return Ok(()),
            Err(e) if crate::store::is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        },
        Some(c)
            if c.secret_hash == wanted.secret_hash
                && c.redirect_uris == wanted.redirect_uris
                && c.post_logout_redirect_uris == wanted.post_logout_redirect_uris
                && c.scopes == wanted.scopes
                && c.grant_types == wanted.grant_types
                && c.sector == wanted.sector
                && c.min_acr == wanted.min_acr
                && !c.disabled =>
        {
            return Ok(());
        }
        Some(_) => {}
    }
    db.align_internal_client(&wanted).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the ID token's signature does not verify with the provider's keys")]
    Signature,
    #[error("the ID token's {0} is wrong")]
    Claim(&'static str),
    #[error("the ID token has expired")]
    Expired,
    #[error("the sign-in has only authentication level {0}; administration needs two factors")]
    WeakAcr(i64),
}

/// What the console learns from a valid ID token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub person_id: String,
    pub sid: String,
    pub acr: i64,
}

/// Checks an ID token as a relying party must: signature with a published key and the console's
/// algorithm, `iss`, `aud` (and `azp`), `exp`, the `nonce` this sign-in sent, then `acr` ≥ 2; `sid`
/// binds the console session to the yunid session.
pub fn check_id_token(
    keys: &KeySet,
    iss: &str,
    token: &str,
    nonce: &str,
    now: i64,
) -> Result<SignedIn, IdTokenError> {
    let (header, claims) = keys.verify(token).map_err(|_| IdTokenError::Signature)?;
    if header.get("alg").and_then(Value::as_str) != Some(Alg::RS256.as_str()) {
        return Err(IdTokenError::Claim("alg"));
    }
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(iss) {
        return Err(IdTokenError::Claim("iss"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == CLIENT_ID,
        Some(Value::Array(list)) => {
            list.iter().any(|a| a.as_str() == Some(CLIENT_ID))
                && (list.len() == 1 || s("azp") == Some(CLIENT_ID))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(IdTokenError::Claim("aud"));
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => {}
        Some(_) => return Err(IdTokenError::Expired),
        None => return Err(IdTokenError::Claim("exp")),
    }
    let nonce_ok = s("nonce").is_some_and(|n| crypto::ct_eq(n.as_bytes(), nonce.as_bytes()));
    if !nonce_ok {
        return Err(IdTokenError::Claim("nonce"));
    }
    let acr = s("acr")
        .and_then(|a| a.parse::<i64>().ok())
        .ok_or(IdTokenError::Claim("acr"))?;
    if acr < REQUIRED_ACR {
        return Err(IdTokenError::WeakAcr(acr));
    }
    let person_id = s("sub").ok_or(IdTokenError::Claim("sub"))?.to_owned();
    let sid = s("sid").ok_or(IdTokenError::Claim("sid"))?.to_owned();
    Ok(SignedIn { person_id, sid, acr })
}
