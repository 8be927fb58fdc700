//! The authorization code grant (RFC 6749 §4.1.3) with PKCE S256 (RFC 7636 §4.6): a code works once, for
//! the client it was issued to, with the redirect URI of the authorization request and the verifier of
//! its challenge; a code used twice revokes what its first use issued.

use super::issue::{Via, issue, subject_of};
use super::{Ctx, GrantError};
use crate::crypto;
use crate::services::oidc::authorize::is_pkce_value;
use crate::services::oidc::code::{Refusal, refusal};
use crate::services::oidc::tokens::{TokenResponse, refresh_expiry};
use crate::store::clients::Client;
use crate::store::families::{CodeRedemption, Family, PresentedCode};
use crate::store::persons::PersonRow;

/// The request's `code`, `redirect_uri` and `code_verifier`.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
}

/// RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)), the only method yunid accepts (S256).
pub fn s256_challenge(verifier: &str) -> String {
    crypto::b64url(&crypto::sha256(verifier.as_bytes()))
}

/// Redeems a code: the tokens of its grant, or why not.
pub async fn redeem(
    ctx: &Ctx<'_>,
    client: &Client,
    input: Input<'_>,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    let Input {
        code,
        redirect_uri,
        code_verifier,
    } = input;
    let hash = crypto::token_hash(code);
    // The verifier is checked (with the client and the redirect URI) by the statement that consumes the
    // code, so a refused request leaves it usable.
    if !is_pkce_value(code_verifier) {
        return Err(GrantError::MalformedVerifier);
    }
    let challenge = s256_challenge(code_verifier);
    // Read the grant before using the code: a concurrent replay revokes it only after its own attempt
    // failed, i.e. after the one successful redemption read it, so that one is not refused as well.
    let family = ctx.db.code_family_with_person(&hash).await?;
    let presented = PresentedCode {
        client_id: &client.id,
        redirect_uri,
        code_challenge: &challenge,
    };
    // The grant's first refresh token, when the client may refresh, is stored by the statement that
    // consumes the code: stored only if this request is the one that uses it.
    let first_refresh = family
        .as_ref()
        .filter(|(f, _)| f.revoked_at.is_none() && client.allows_grant("refresh_token"))
        .map(|(f, _)| {
            let token = ctx.rng.token();
            let hash = crypto::token_hash(&token);
            let expires_at = refresh_expiry(ctx.minting.settings.refresh_idle_ttl, f, now);
            (token, hash, expires_at)
        });
    let stored = first_refresh
        .as_ref()
        .map(|(_, hash, expires_at)| (hash.as_str(), *expires_at));
    let family_id = match ctx.db.redeem_code(&hash, &presented, stored, now).await? {
        CodeRedemption::Redeemed(family_id) => family_id,
        CodeRedemption::Refused(row, used) => {
            let why = refusal(&row, used, &client.id, redirect_uri, &challenge, now);
            // RFC 6749 §4.1.2: a code used twice revokes what its first use issued.
            if let Refusal::Reused(family) = &why {
                ctx.db.revoke_family(family, now).await?;
                tracing::warn!(client = %client.id, "authorization code reused; its grant is revoked");
            }
            return Err(GrantError::CodeRefused(why));
        }
        CodeRedemption::Unknown => return Err(GrantError::UnknownCode),
    };
    let (token, stored_hash) = first_refresh
        .map(|(token, hash, _)| (Some(token), Some(hash)))
        .unwrap_or_default();
    let issued = issue_for(ctx, client, family, &family_id, code, token, now).await;
    if issued.is_err()
        && let Some(hash) = stored_hash
    {
        // Refused after the code's use (a locked person, an ended representation): the refresh token
        // stored with it was never sent; drop it rather than leave it in the family.
        if let Err(e) = ctx.db.drop_unsent_refresh(&hash).await {
            tracing::warn!(error = %e, "an unsent refresh token could not be dropped");
        }
    }
    issued
}

/// The tokens of the grant a code was redeemed for (read before its use), or why not now.
async fn issue_for(
    ctx: &Ctx<'_>,
    client: &Client,
    family: Option<(Family, Option<PersonRow>)>,
    family_id: &str,
    code: &str,
    first_refresh: Option<String>,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    let (family, person) = family
        .filter(|(f, _)| f.id == family_id && f.revoked_at.is_none())
        .ok_or(GrantError::GrantRevoked)?;
    let subject = subject_of(ctx, client, &family, person, now).await?;
    let via = Via::Code(code, first_refresh);
    issue(ctx, client, &family, subject, &family.scope, via, now).await
}
