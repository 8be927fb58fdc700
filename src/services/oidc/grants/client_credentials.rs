//! The client credentials grant (RFC 6749 §4.4): an access token for the client itself, no person, no ID
//! token, no refresh token; `openid` is never granted here.

use super::{Ctx, GrantError};
use crate::services::oidc::scope::ScopeSet;
use crate::services::oidc::tokens::{self, AccessTokenInput, TokenResponse};
use crate::store::clients::Client;

/// The request's `scope`, when it names one.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub scope: Option<ScopeSet>,
}

/// The scope asked for, every scope of it allowed; else every scope of the client but `openid`.
fn scope(client: &Client, asked: Option<ScopeSet>) -> Result<ScopeSet, GrantError> {
    match asked {
        Some(asked) => {
            if let Some(bad) = asked.iter().find(|s| *s == "openid" || !client.allows_scope(s)) {
                return Err(GrantError::InvalidScope(bad.to_owned()));
            }
            Ok(asked)
        }
        None => Ok(client
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "openid")
            .collect()),
    }
}

/// Issues an access token to the client for itself.
pub fn issue(ctx: &Ctx<'_>, client: &Client, input: Input, now: i64) -> Result<TokenResponse, GrantError> {
    let scope = scope(client, input.scope)?;
    let access_token = tokens::access_token(
        &ctx.minting,
        ctx.rng,
        AccessTokenInput {
            client,
            sub: &client.id,
            scope: &scope,
            family: None,
            actor: None,
        },
        now,
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ctx.minting.settings.access_token_ttl,
        scope: scope.to_string(),
        id_token: None,
        refresh_token: None,
    })
}
