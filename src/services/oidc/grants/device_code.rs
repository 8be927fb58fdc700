//! The device code grant at the token endpoint (RFC 8628 §3.4–3.5): the device polls with its device
//! code until the person answered. Each poll is recorded in the database (so `slow_down` holds across
//! nodes), and an approved code is redeemed by one statement, once.

use crate::crypto;
use crate::services::device::GRANT_TYPE;
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::device::{DeviceStatus, Poll};
use crate::store::families::Family;

/// What the grant needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The longest a grant lives (`refresh_absolute_ttl`).
    pub grant_ttl: i64,
}

/// RFC 8628 §3.5 error responses, and `invalid_grant`/`unauthorized_client` (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum DeviceGrantError {
    #[error("the person has not answered yet")]
    AuthorizationPending,
    #[error("polling too fast: wait 5 seconds more between polls")]
    SlowDown,
    #[error("the device code expired; start again")]
    ExpiredToken,
    #[error("the person denied the request")]
    AccessDenied,
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("this client may not use the device authorization grant")]
    UnauthorizedClient,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for DeviceGrantError {
    fn from(e: sqlx::Error) -> Self {
        DeviceGrantError::Internal(e.into())
    }
}

/// One poll with `device_code` by the authenticated `client`: the grant to issue tokens for, once the
/// person approved.
pub async fn exchange(
    db: &Db,
    settings: Settings,
    client: &Client,
    device_code: &str,
    new_id: String,
    now: i64,
) -> Result<Family, DeviceGrantError> {
    if !client.allows_grant(GRANT_TYPE) {
        return Err(DeviceGrantError::UnauthorizedClient);
    }
    let hash = crypto::token_hash(device_code);
    // Another client's device code is unknown to this one (and its poll records nothing).
    let Poll::Seen { row, too_fast } = db.poll_device_grant(&hash, &client.id, now).await? else {
        return Err(DeviceGrantError::InvalidGrant("unknown device code"));
    };
    if row.status == DeviceStatus::Used {
        return Err(DeviceGrantError::InvalidGrant("the device code was used already"));
    }
    if row.expires_at <= now {
        return Err(DeviceGrantError::ExpiredToken);
    }
    match row.status {
        DeviceStatus::Pending if too_fast => return Err(DeviceGrantError::SlowDown),
        DeviceStatus::Pending => return Err(DeviceGrantError::AuthorizationPending),
        DeviceStatus::Denied => {
            // Said once; the code is spent.
            db.close_device_grant(&hash).await?;
            return Err(DeviceGrantError::AccessDenied);
        }
        DeviceStatus::Approved | DeviceStatus::Used => {}
    }
    let Some(row) = db.use_device_grant(&hash, &client.id, now).await? else {
        return Err(DeviceGrantError::InvalidGrant("the device code was used already"));
    };
    let (Some(person_id), Some(sid)) = (row.person_id, row.session_sid) else {
        return Err(DeviceGrantError::InvalidGrant("the device code was not approved"));
    };
    // An app marked as a kiosk keeps what it gets for its short session only.
    let ttl = match db.device_client(&client.id).await?.flatten() {
        Some(kiosk) => kiosk.min(settings.grant_ttl),
        None => settings.grant_ttl,
    };
    let family = Family {
        id: new_id,
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
    db.insert_family(&family).await?;
    // Signing out of the session that approved it logs the device out too (back-channel logout).
    db.add_session_client(&sid, &client.id, &person_id, now).await?;
    Ok(family)
}
