//! Passkeys (WebAuthn L3, via webauthn-rs): registration from the account page, passwordless login with
//! discoverable credentials (conditional UI where the browser offers it), and passkeys as a second
//! factor. Ceremony state lives in the database under an opaque id, is single use and expires quickly.

use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::config::Config;
use crate::crypto::{self, Random};
use crate::store::Db;
use crate::store::login::PasskeyRow;
use crate::store::sessions::SessionRow;

/// How long a ceremony may take, seconds.
const CEREMONY_TTL: i64 = 300;

/// The relying party: id from configuration (or the issuer's host), origins the issuer's plus extras.
/// `None` when the issuer's host cannot be a relying-party id (e.g. an IP address): passkeys are off.
pub fn relying_party(config: &Config) -> anyhow::Result<Option<Webauthn>> {
    let origin = config.issuer.clone();
    let rp_id = match &config.webauthn_rp_id {
        Some(id) => id.clone(),
        None => match origin.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            _ => {
                tracing::warn!("passkeys are off: the issuer's host is not a domain (set webauthn_rp_id)");
                return Ok(None);
            }
        },
    };
    let mut builder = WebauthnBuilder::new(&rp_id, &origin)?.rp_name("统一身份认证");
    let extra: Vec<url::Url> = config
        .webauthn_origins
        .iter()
        .map(|o| url::Url::parse(o))
        .collect::<Result<_, _>>()?;
    for o in &extra {
        builder = builder.append_allowed_origin(o);
    }
    Ok(Some(builder.build()?))
}

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("passkeys are not enabled on this deployment")]
    Disabled,
    /// Adding a credential needs a recent two-factor sign-in (see [`may_add_credentials`]).
    #[error("a recent two-factor sign-in is needed first")]
    StepUp,
    #[error("the ceremony expired or was already used")]
    Ceremony,
    #[error("the passkey could not be verified")]
    Rejected,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for PasskeyError {
    fn from(e: sqlx::Error) -> Self {
        PasskeyError::Internal(e.into())
    }
}

/// What the passkey ceremonies need; built by `App::passkeys`.
pub struct Ctx<'a> {
    pub db: &'a Db,
    /// The relying party; `None` when passkeys are off.
    pub webauthn: Option<&'a Webauthn>,
    /// How recent a two-factor sign-in must be to add a credential (seconds).
    pub step_up_max_age: i64,
    pub rng: &'a dyn Random,
}

fn webauthn<'a>(ctx: &Ctx<'a>) -> Result<&'a Webauthn, PasskeyError> {
    ctx.webauthn.ok_or(PasskeyError::Disabled)
}

fn person_uuid(person_id: &str) -> Result<Uuid, PasskeyError> {
    Uuid::parse_str(person_id).map_err(|e| PasskeyError::Internal(e.into()))
}

fn stored(row: &PasskeyRow) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(&row.passkey).map_err(|e| PasskeyError::Internal(e.into()))
}

/// Whether this session may add a credential: two factors (acr 2: password and SMS code, or a
/// user-verified passkey) at most `max_age` seconds ago. A passkey signs in at level 2, so adding one
/// from a one-factor session would turn one stolen factor (a password, one SMS code) into two-factor
/// access that outlives a password reset. Factors carried from a phone (a scan) or an upstream are not
/// the person's own proof here (review of F6): such a session steps up in this browser first.
pub fn may_add_credentials(session: &SessionRow, max_age: i64, now: i64) -> bool {
    session.acr >= 2 && now - session.auth_time <= max_age && !session.amr.is_carried()
}

fn step_up_done(ctx: &Ctx<'_>, session: &SessionRow, now: i64) -> Result<(), PasskeyError> {
    if may_add_credentials(session, ctx.step_up_max_age, now) {
        Ok(())
    } else {
        Err(PasskeyError::StepUp)
    }
}

/// Starts registering a passkey for the person of `session`; returns (ceremony id, options for the
/// browser). Refused ([`PasskeyError::StepUp`]) unless the session [may add credentials](may_add_credentials).
pub async fn start_registration(
    ctx: &Ctx<'_>,
    session: &SessionRow,
    user_name: &str,
    display_name: &str,
    now: i64,
) -> Result<(String, CreationChallengeResponse), PasskeyError> {
    let wa = webauthn(ctx)?;
    step_up_done(ctx, session, now)?;
    let person_id = session.person_id.as_str();
    let existing: Vec<_> = ctx
        .db
        .passkeys_of(person_id)
        .await?
        .iter()
        .map(|r| stored(r).map(|p| p.cred_id().clone()))
        .collect::<Result<_, _>>()?;
    let (mut options, state) = wa
        .start_passkey_registration(person_uuid(person_id)?, user_name, display_name, Some(existing))
        .map_err(|e| PasskeyError::Internal(anyhow::anyhow!("{e}")))?;
    // Usernameless login needs a discoverable credential (a resident key).
    if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
        sel.resident_key = Some(ResidentKeyRequirement::Required);
        sel.require_resident_key = true;
    }
    let ceremony = ctx.rng.token();
    let state = serde_json::to_string(&state).map_err(|e| PasskeyError::Internal(e.into()))?;
    ctx.db
        .insert_ceremony(
            &crypto::token_hash(&ceremony),
            "register",
            Some(person_id),
            &state,
            now + CEREMONY_TTL,
        )
        .await?;
    Ok((ceremony, options))
}

/// Finishes a registration: verifies the browser's answer against the stored challenge and keeps the key.
/// The session is checked again (it may have lost its freshness, or been another, since the start).
pub async fn finish_registration(
    ctx: &Ctx<'_>,
    session: &SessionRow,
    ceremony: &str,
    name: &str,
    credential: &RegisterPublicKeyCredential,
    now: i64,
) -> Result<String, PasskeyError> {
    let wa = webauthn(ctx)?;
    step_up_done(ctx, session, now)?;
    let person_id = session.person_id.as_str();
    let (owner, state) = ctx
        .db
        .take_ceremony(&crypto::token_hash(ceremony), "register", now)
        .await?
        .ok_or(PasskeyError::Ceremony)?;
    if owner.as_deref() != Some(person_id) {
        return Err(PasskeyError::Ceremony);
    }
    let state: PasskeyRegistration =
        serde_json::from_str(&state).map_err(|e| PasskeyError::Internal(e.into()))?;
    let passkey = wa.finish_passkey_registration(credential, &state).map_err(|e| {
        tracing::info!(error = %e, "passkey registration rejected");
        PasskeyError::Rejected
    })?;
    let name = name.trim();
    let name = if name.is_empty() { "通行密钥" } else { name };
    let row = PasskeyRow {
        id: crate::ids::new_id(now, ctx.rng).to_string(),
        person_id: person_id.to_owned(),
        name: name.chars().take(64).collect(),
        credential_id: crypto::b64url(passkey.cred_id().as_ref()),
        passkey: serde_json::to_string(&passkey).map_err(|e| PasskeyError::Internal(e.into()))?,
        created_at: now,
        last_used_at: None,
    };
    ctx.db.insert_passkey(&row).await?;
    Ok(row.id)
}

/// Starts a passwordless login (no user named: the browser offers discoverable credentials).
pub async fn start_login(
    ctx: &Ctx<'_>,
    now: i64,
) -> Result<(String, RequestChallengeResponse), PasskeyError> {
    let wa = webauthn(ctx)?;
    let (options, state) = wa
        .start_discoverable_authentication()
        .map_err(|e| PasskeyError::Internal(anyhow::anyhow!("{e}")))?;
    let ceremony = ctx.rng.token();
    let state = serde_json::to_string(&state).map_err(|e| PasskeyError::Internal(e.into()))?;
    ctx.db
        .insert_ceremony(
            &crypto::token_hash(&ceremony),
            "login",
            None,
            &state,
            now + CEREMONY_TTL,
        )
        .await?;
    Ok((ceremony, options))
}

/// Finishes a passkey login: returns the person it proves. Origin, rp id, challenge, user verification
/// and the signature counter are checked by webauthn-rs; the ceremony works once.
pub async fn finish_login(
    ctx: &Ctx<'_>,
    ceremony: &str,
    credential: &PublicKeyCredential,
    now: i64,
) -> Result<String, PasskeyError> {
    let wa = webauthn(ctx)?;
    let ceremony = crypto::token_hash(ceremony);
    // The key the browser names is read by the statement that uses the ceremony (one statement).
    let Ok((user, cred_id)) = wa.identify_discoverable_authentication(credential) else {
        // Unreadable: the ceremony is used all the same (as when it was taken first).
        ctx.db
            .take_ceremony(&ceremony, "login", now)
            .await?
            .ok_or(PasskeyError::Ceremony)?;
        return Err(PasskeyError::Rejected);
    };
    let (state, row) = ctx
        .db
        .take_login_ceremony(&ceremony, &crypto::b64url(cred_id), now)
        .await?
        .ok_or(PasskeyError::Ceremony)?;
    let state: DiscoverableAuthentication =
        serde_json::from_str(&state).map_err(|e| PasskeyError::Internal(e.into()))?;
    let row = row
        .filter(|r| Uuid::parse_str(&r.person_id).ok() == Some(user))
        .ok_or(PasskeyError::Rejected)?;
    let mut passkey = stored(&row)?;
    let result = wa
        .finish_discoverable_authentication_v2(credential, state, &passkey)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey login rejected");
            PasskeyError::Rejected
        })?;
    if !result.user_verified() {
        return Err(PasskeyError::Rejected);
    }
    // Keep the signature counter (and backup state) current.
    passkey.update_credential(&result);
    let json = serde_json::to_string(&passkey).map_err(|e| PasskeyError::Internal(e.into()))?;
    ctx.db.update_passkey(&row.id, &json, now).await?;
    Ok(row.person_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(acr: i64, auth_time: i64) -> SessionRow {
        SessionRow {
            id_hash: String::new(),
            sid: String::new(),
            person_id: String::new(),
            auth_time,
            amr: Default::default(),
            acr,
            created_at: auth_time,
            last_seen: auth_time,
            expires_at: auth_time + 3600,
        }
    }

    #[test]
    fn only_a_recent_two_factor_sign_in_adds_credentials() {
        let now = 1_000_000;
        assert!(may_add_credentials(&session(2, now - 600), 600, now));
        assert!(!may_add_credentials(&session(2, now - 601), 600, now), "too old");
        assert!(!may_add_credentials(&session(1, now), 600, now), "one factor");
    }
}
