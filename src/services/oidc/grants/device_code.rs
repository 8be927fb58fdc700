//! The device code grant at the token endpoint (RFC 8628 §3.4–3.5): the device polls with its device
//! code until the person answered on `/device` (`services::device`). Each poll is recorded in the
//! database (so `slow_down` holds across nodes), and an approved code is redeemed by one statement, once;
//! the grant it makes belongs to the session that approved it.

use super::issue::{Via, issue, subject_of};
use super::{Ctx, GrantError};
use crate::crypto;
use crate::services::oidc::tokens::TokenResponse;
use crate::store::clients::Client;
use crate::store::device::{DeviceStatus, Poll};
use crate::store::families::Family;

/// The request's `device_code`.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub device_code: &'a str,
}

/// One poll with the device code by the authenticated `client`: the tokens, once the person approved.
pub async fn redeem(
    ctx: &Ctx<'_>,
    client: &Client,
    input: Input<'_>,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    let hash = crypto::token_hash(input.device_code);
    // Another client's device code is unknown to this one (and its poll records nothing).
    let Poll::Seen { row, too_fast } = ctx.db.poll_device_grant(&hash, &client.id, now).await? else {
        return Err(GrantError::DeviceCodeRefused("unknown device code"));
    };
    if row.status == DeviceStatus::Used {
        return Err(GrantError::DeviceCodeRefused("the device code was used already"));
    }
    if row.expires_at <= now {
        return Err(GrantError::ExpiredToken);
    }
    match row.status {
        DeviceStatus::Pending if too_fast => return Err(GrantError::SlowDown),
        DeviceStatus::Pending => return Err(GrantError::AuthorizationPending),
        DeviceStatus::Denied => {
            // Said once; the code is spent.
            ctx.db.close_device_grant(&hash).await?;
            return Err(GrantError::AccessDenied);
        }
        DeviceStatus::Approved | DeviceStatus::Used => {}
    }
    let Some(row) = ctx.db.use_device_grant(&hash, &client.id, now).await? else {
        return Err(GrantError::DeviceCodeRefused("the device code was used already"));
    };
    let (Some(person_id), Some(sid)) = (row.person_id, row.session_sid) else {
        return Err(GrantError::DeviceCodeRefused("the device code was not approved"));
    };
    // An app marked as a kiosk keeps what it gets for its short session only (its own limit, or the
    // default one when it was marked without).
    let grant_ttl = ctx.settings.grant_ttl;
    let ttl = match ctx.db.device_client(&client.id).await? {
        Some(setting) => crate::services::device::kiosk_ttl(setting).min(grant_ttl),
        None => grant_ttl,
    };
    let family = Family {
        id: crate::ids::new_id(now, ctx.rng).simple().to_string(),
        client_id: client.id.clone(),
        person_id: Some(person_id.clone()),
        session_sid: Some(sid.clone()),
        scope: row.scope,
        claims: None,
        acr: row.acr.unwrap_or(1),
        amr: row.amr.unwrap_or_default(),
        auth_time: row.auth_time.unwrap_or(now),
        nonce: None,
        created_at: now,
        expires_at: now + ttl,
        revoked_at: None,
        acting_rep_id: None,
        licence_types: String::new(),
    };
    ctx.db.insert_family(&family).await?;
    // Signing out of the session that approved it logs the device out too (back-channel logout): the
    // family carries the session's `sid` (`Db::session_clients`).
    // The approving session ended before the grant was written (its logout found no grant to revoke),
    // or timed out (idle or absolute: review F5): the approval ended with it. Logout ends the session
    // before it revokes, so a session still found live here will revoke this grant if it ends now.
    let idle_since = now - ctx.settings.session_idle_ttl;
    if !ctx.db.session_is_live(&sid, now, idle_since).await? {
        ctx.db.revoke_family(&family.id, now).await?;
        return Err(GrantError::ExpiredToken);
    }
    let person = ctx.db.person(&person_id).await?;
    let subject = subject_of(ctx, client, &family, person, now).await?;
    issue(ctx, client, &family, subject, &family.scope, Via::Device, now).await
}
