//! The tokens a person's grant issues, by code or by refresh: an access token, an ID token when `openid`
//! counts, and a refresh token.

use super::{Ctx, GrantError};
use crate::services::licence::Release;
use crate::services::oidc::claims::{self, GrantSubject};
use crate::services::oidc::scope::ScopeSet;
use crate::services::oidc::tokens::{self, AccessTokenInput, IdTokenInput, TokenResponse};
use crate::store::clients::Client;
use crate::store::families::Family;
use crate::store::persons::PersonRow;

/// What the tokens are issued for.
pub(super) enum Via<'a> {
    /// An authorization code (its ID token carries the nonce and `c_hash`), with the grant's first refresh
    /// token when the client may refresh: stored already, by the statement that consumed the code.
    Code(&'a str, Option<String>),
    /// A refresh, whose successor refresh token is already stored.
    Refresh(String),
    /// A device code (RFC 8628): no nonce, no `c_hash`; a refresh token when the client may refresh.
    Device,
}

/// Who a grant speaks for now (the person read with the family, when it was); a locked person or an
/// ended representation is `invalid_grant`.
pub(super) async fn subject_of(
    ctx: &Ctx<'_>,
    client: &Client,
    family: &Family,
    person: Option<PersonRow>,
    now: i64,
) -> Result<GrantSubject, GrantError> {
    Ok(claims::grant_subject_of(&ctx.subjects(), client, family, person, now).await?)
}

/// Access token, ID token (when `openid` counts) and a refresh token: the one stored with the code's use
/// or the rotated one after a refresh, else (a device code) a new one when the client may refresh.
pub(super) async fn issue(
    ctx: &Ctx<'_>,
    client: &Client,
    family: &Family,
    subject: GrantSubject,
    scope: &ScopeSet,
    via: Via<'_>,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    // The refresh token already stored for this issue, and whether one is still to be made here.
    let (code, stored_refresh, mint_refresh) = match via {
        Via::Code(code, first) => (Some(code), first, false),
        Via::Refresh(next) => (None, Some(next), false),
        Via::Device => (None, None, true),
    };
    // What this issue releases follows the scope asked now and the app as it is now (OIDC Core §5.4),
    // not the scope once granted.
    let scopes = claims::effective_scopes(client, scope);
    let actor = subject
        .acting
        .as_ref()
        .map(|_| claims::subject(ctx.minting.secrets, client, &subject.person.id));
    let access_token = tokens::access_token(
        &ctx.minting,
        ctx.rng,
        AccessTokenInput {
            client,
            sub: &subject.sub,
            scope: &scopes,
            family: Some(family),
            actor: actor.as_deref(),
        },
        now,
    )?;
    let claims_request: Option<serde_json::Value> = family
        .claims
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let id_token = if scopes.contains("openid") {
        let asked = Release {
            consented: &family.licence_types,
            scopes: &scopes,
            claims: claims_request.as_ref(),
            member: "id_token",
        };
        let licences = ctx.licences.release(client, &asked, &subject, now).await?;
        Some(tokens::id_token(
            &ctx.minting,
            client,
            IdTokenInput {
                family,
                subject: &subject,
                scopes: &scopes,
                // OIDC Core §12.2: a refreshed ID token carries no nonce.
                nonce: code.and(family.nonce.as_deref()),
                access_token: Some(&access_token),
                code,
                licences,
                now,
            },
        )?)
    } else {
        None
    };
    let refresh_token = match stored_refresh {
        Some(token) => Some(token),
        None if mint_refresh && client.allows_grant("refresh_token") => Some(
            tokens::refresh_token(
                ctx.db,
                ctx.rng,
                ctx.minting.settings.refresh_idle_ttl,
                family,
                now,
            )
            .await?,
        ),
        None => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: tokens::lifetime_end(now + ctx.minting.settings.access_token_ttl, Some(family)) - now,
        scope: scopes.to_string(),
        id_token,
        refresh_token,
    })
}
