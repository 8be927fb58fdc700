//! The refresh token grant (RFC 6749 §6) with rotation: each refresh token works once and is replaced;
//! presenting a used one again revokes the whole family (RFC 9700 §4.14.2). A grant without
//! `offline_access` lives only as long as the SSO session that made it (OIDC Core §11).

use super::issue::{Via, issue, subject_of};
use super::{Ctx, GrantError};
use crate::crypto;
use crate::services::oidc::scope::ScopeSet;
use crate::services::oidc::tokens::{self, TokenResponse};
use crate::store::clients::Client;
use crate::store::families::{Family, Redeemed};

/// The request's `refresh_token`, and its `scope` when it asks for less than was granted.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub refresh_token: &'a str,
    /// `Err`: the `scope` parameter itself is unusable (repeated, too long; the description). Refused
    /// like a scope wider than the grant: after reuse detection, so a replay cannot dodge it this way.
    pub scope: Result<Option<ScopeSet>, String>,
}

/// The scope a refresh asks for: the granted one, or a subset of it (RFC 6749 §6).
fn requested_scope(family: &Family, asked: Result<Option<ScopeSet>, String>) -> Result<ScopeSet, GrantError> {
    let granted = &family.scope;
    match asked.map_err(GrantError::InvalidRequest)? {
        None => Ok(granted.clone()),
        Some(asked) if asked.is_subset_of(granted) => Ok(asked),
        Some(_) => Err(GrantError::ScopeExceedsGrant),
    }
}

/// Rotates a refresh token: the tokens of its grant and the successor, or why not.
pub async fn refresh(
    ctx: &Ctx<'_>,
    client: &Client,
    input: Input<'_>,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    let hash = crypto::token_hash(input.refresh_token);
    // Check the owner before consuming, so a stranger cannot burn someone else's token.
    let Some((state, family, person)) = ctx.db.refresh_with_family(&hash).await? else {
        return Err(GrantError::UnknownRefreshToken);
    };
    if family.client_id != client.id {
        return Err(GrantError::RefreshTokenOfAnotherClient);
    }
    // A refused request must not consume the token (the app's retry would then look like reuse); a token
    // already used still goes on to reuse detection.
    let scope = requested_scope(&family, input.scope);
    if !state.used
        && let Err(e) = scope
    {
        return Err(e);
    }
    // A grant without offline_access lives only as long as the SSO session that made it (OIDC Core §11):
    // once that session ended, or expired idle or absolute, the app must send the person back to sign in.
    if !state.used && !family.scope.contains("offline_access") {
        let live = match &family.session_sid {
            Some(sid) => {
                ctx.db
                    .session_is_live(sid, now, now - ctx.settings.session_idle_ttl)
                    .await?
            }
            None => false,
        };
        if !live {
            return Err(GrantError::SessionEnded);
        }
    }
    // The successor is stored by the same statement that consumes the token, and only when the refresh
    // can succeed.
    let usable = state.expires_at > now && family.expires_at > now && family.revoked_at.is_none();
    let next = ctx.rng.token();
    let next_hash = crypto::token_hash(&next);
    let next_expires_at = tokens::refresh_expiry(ctx.minting.settings.refresh_idle_ttl, &family, now);
    let stored = usable.then_some((next_hash.as_str(), next_expires_at));
    // A token read as used is reuse already; otherwise the rotation decides which of concurrent uses won.
    let redeemed = if state.used {
        Redeemed::Reused(family.id.clone())
    } else {
        ctx.db.rotate_refresh(&hash, &family.id, stored, now).await?
    };
    let expires_at = match redeemed {
        Redeemed::Fresh(()) => state.expires_at,
        // RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the whole family.
        Redeemed::Reused(family) => {
            ctx.db.revoke_family(&family, now).await?;
            tracing::warn!(client = %client.id, "refresh token reused; its family is revoked");
            return Err(GrantError::RefreshTokenReused);
        }
        Redeemed::Unknown => return Err(GrantError::UnknownRefreshToken),
    };
    if expires_at <= now || family.expires_at <= now {
        return Err(GrantError::RefreshTokenExpired);
    }
    if family.revoked_at.is_some() {
        return Err(GrantError::GrantRevoked);
    }
    let scope = scope?;
    let subject = subject_of(ctx, client, &family, person, now).await?;
    issue(ctx, client, &family, subject, &scope, Via::Refresh(next), now).await
}
