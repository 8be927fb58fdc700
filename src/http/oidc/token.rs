//! The token endpoint (RFC 6749 §3.2): authorization_code (with PKCE), refresh_token (rotating, reuse
//! revokes the family), client_credentials.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::crypto;
use crate::error::{Error, OAuthError};
use crate::http::forms::ProtocolParams;
use crate::services::licence;
use crate::services::oidc::authorize::is_pkce_value;
use crate::services::oidc::claims;
use crate::services::oidc::client_auth::{self, Presented};
use crate::services::oidc::code::{Refusal, refusal};
use crate::services::oidc::tokens::{self, IdTokenInput, TokenResponse};
use crate::services::params::Params;
use crate::store::clients::Client;
use crate::store::families::{CodeRedemption, Family, PresentedCode, Redeemed};
use crate::store::persons::PersonRow;

pub fn presented(headers: &HeaderMap) -> Presented {
    Presented {
        basic: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(client_auth::parse_basic),
    }
}

pub async fn token(
    State(app): State<App>,
    headers: HeaderMap,
    ProtocolParams(params): ProtocolParams,
) -> Result<Response, Error> {
    let now = app.now();
    let grant_type = params.require("grant_type")?.to_owned();
    let client = client_auth::authenticate(&app, &presented(&headers), &params, now).await?;
    let response = match grant_type.as_str() {
        "authorization_code" => authorization_code(&app, &client, &params, now).await?,
        "refresh_token" => refresh_token(&app, &client, &params, now).await?,
        "client_credentials" => client_credentials(&app, &client, &params, now).await?,
        _ => return Err(OAuthError::unsupported_grant_type("unsupported grant_type").into()),
    };
    app.metrics.token_issued(&grant_type);
    Ok((
        [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
        Json(response),
    )
        .into_response())
}

fn grant_allowed(client: &Client, grant: &str) -> Result<(), Error> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(format!("this client may not use {grant}")).into())
    }
}

async fn authorization_code(
    app: &App,
    client: &Client,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, Error> {
    grant_allowed(client, "authorization_code")?;
    let code = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = params.require("code_verifier")?;
    let invalid = |m: &str| Error::from(OAuthError::invalid_grant(m));
    let hash = crypto::token_hash(code);
    // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge; checked (with the client and the
    // redirect URI) by the statement that consumes the code, so a refused request leaves it usable.
    if !is_pkce_value(verifier) {
        return Err(invalid("code_verifier is malformed"));
    }
    let challenge = crypto::b64url(&crypto::sha256(verifier.as_bytes()));
    // Read the grant before using the code: a concurrent replay revokes it only after its own attempt
    // failed, i.e. after the one successful redemption read it, so that one is not refused as well.
    let family = match app.db.code_family(&hash).await? {
        Some(id) => app.db.family_with_person(&id).await?,
        None => None,
    };
    let presented = PresentedCode {
        client_id: &client.id,
        redirect_uri,
        code_challenge: &challenge,
    };
    let family_id = match app.db.redeem_code(&hash, &presented, now).await? {
        CodeRedemption::Redeemed(family_id) => family_id,
        CodeRedemption::Refused(row, used) => {
            let why = refusal(&row, used, &client.id, redirect_uri, &challenge, now);
            // RFC 6749 §4.1.2: a code used twice revokes what its first use issued.
            if let Refusal::Reused(family) = &why {
                app.db.revoke_family(family, now).await?;
                tracing::warn!(client = %client.id, "authorization code reused; its grant is revoked");
            }
            return Err(invalid(why.description()));
        }
        CodeRedemption::Unknown => return Err(invalid("unknown authorization code")),
    };
    let (family, person) = family
        .filter(|(f, _)| f.id == family_id && f.revoked_at.is_none())
        .ok_or_else(|| invalid("the grant was revoked"))?;
    let subject = subject_of(app, client, &family, person, now).await?;
    issue(app, client, &family, subject, &family.scope, Via::Code(code), now).await
}

async fn refresh_token(
    app: &App,
    client: &Client,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, Error> {
    grant_allowed(client, "refresh_token")?;
    let token = params.require("refresh_token")?;
    let hash = crypto::token_hash(token);
    let invalid = |m: &str| Error::from(OAuthError::invalid_grant(m));
    // Check the owner before consuming, so a stranger cannot burn someone else's token.
    let Some((state, family, person)) = app.db.refresh_with_family(&hash).await? else {
        return Err(invalid("unknown refresh token"));
    };
    if family.client_id != client.id {
        return Err(invalid("refresh token was issued to another client"));
    }
    // A refused request must not consume the token (the app's retry would then look like reuse); a token
    // already used still goes on to reuse detection.
    let scope = requested_scope(&family, params);
    if !state.used
        && let Err(e) = &scope
    {
        return Err(e.clone().into());
    }
    // A grant without offline_access lives only as long as the SSO session that made it (OIDC Core §11):
    // once that session ended, or expired idle or absolute, the app must send the person back to sign in.
    if !state.used && !family.scope.split(' ').any(|s| s == "offline_access") {
        let live = match &family.session_sid {
            Some(sid) => {
                app.db
                    .session_is_live(sid, now, now - app.config.session_idle_ttl)
                    .await?
            }
            None => false,
        };
        if !live {
            return Err(invalid("the session this grant belongs to has ended"));
        }
    }
    // The successor is stored by the same statement that consumes the token, and only when the refresh
    // can succeed.
    let usable = state.expires_at > now && family.expires_at > now && family.revoked_at.is_none();
    let next = crypto::random_token();
    let next_hash = crypto::token_hash(&next);
    let next_expires_at = tokens::refresh_expiry(app, &family, now);
    let stored = usable.then_some((next_hash.as_str(), next_expires_at));
    // A token read as used is reuse already; otherwise the rotation decides which of concurrent uses won.
    let redeemed = if state.used {
        Redeemed::Reused(family.id.clone())
    } else {
        app.db.rotate_refresh(&hash, &family.id, stored, now).await?
    };
    let expires_at = match redeemed {
        Redeemed::Fresh(()) => state.expires_at,
        // RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the whole family.
        Redeemed::Reused(family) => {
            app.db.revoke_family(&family, now).await?;
            tracing::warn!(client = %client.id, "refresh token reused; its family is revoked");
            return Err(invalid("refresh token already used"));
        }
        Redeemed::Unknown => return Err(invalid("unknown refresh token")),
    };
    if expires_at <= now || family.expires_at <= now {
        return Err(invalid("refresh token expired"));
    }
    if family.revoked_at.is_some() {
        return Err(invalid("the grant was revoked"));
    }
    let scope = scope?;
    let subject = subject_of(app, client, &family, person, now).await?;
    issue(app, client, &family, subject, &scope, Via::Refresh(next), now).await
}

/// The scope a refresh asks for: the granted one, or a subset of it (RFC 6749 §6).
fn requested_scope(family: &Family, params: &Params) -> Result<String, OAuthError> {
    match params.get("scope")? {
        None => Ok(family.scope.clone()),
        Some(asked) => {
            let granted: Vec<&str> = family.scope.split(' ').collect();
            if !asked
                .split(' ')
                .filter(|s| !s.is_empty())
                .all(|s| granted.contains(&s))
            {
                return Err(OAuthError::invalid_scope("scope exceeds what was granted"));
            }
            Ok(asked.to_owned())
        }
    }
}

/// Who a grant speaks for now (the person read with the family, when it was); a locked person or an ended
/// representation is `invalid_grant`.
async fn subject_of(
    app: &App,
    client: &Client,
    family: &Family,
    person: Option<PersonRow>,
    now: i64,
) -> Result<claims::GrantSubject, Error> {
    match claims::grant_subject_of(app, client, family, person, now).await {
        Ok(s) => Ok(s),
        Err(claims::SubjectError::Internal(e)) => Err(e.into()),
        Err(e) => Err(OAuthError::invalid_grant(e.to_string()).into()),
    }
}

/// What the tokens are issued for.
enum Via<'a> {
    /// An authorization code (its ID token carries the nonce and `c_hash`).
    Code(&'a str),
    /// A refresh, whose successor refresh token is already stored.
    Refresh(String),
}

/// Access token, ID token (when `openid` was granted) and a refresh token: the rotated one after a
/// refresh, else a new one when the client may refresh.
async fn issue(
    app: &App,
    client: &Client,
    family: &Family,
    subject: claims::GrantSubject,
    scope: &str,
    via: Via<'_>,
    now: i64,
) -> Result<TokenResponse, Error> {
    let (code, rotated) = match via {
        Via::Code(code) => (Some(code), None),
        Via::Refresh(next) => (None, Some(next)),
    };
    // What this issue releases follows the scope asked now and the app as it is now (OIDC Core §5.4),
    // not the scope once granted.
    let scopes = claims::effective_scopes(client, scope);
    let scope = scopes.join(" ");
    let actor = subject
        .acting
        .as_ref()
        .map(|_| claims::subject(app, client, &subject.person.id));
    let access_token = tokens::access_token(
        app,
        client,
        &subject.sub,
        &scope,
        Some(family),
        actor.as_deref(),
        now,
    )?;
    let claims_request: Option<serde_json::Value> = family
        .claims
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let id_token = if scopes.contains(&"openid") {
        let asked = licence::Release {
            consented: &family.licence_types,
            scopes: &scopes,
            claims: claims_request.as_ref(),
            member: "id_token",
        };
        let licences = licence::release(&app.licence_upstream(), client, &asked, &subject, now).await?;
        Some(tokens::id_token(
            app,
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
    let refresh_token = match rotated {
        Some(token) => Some(token),
        None if client.allows_grant("refresh_token") => Some(tokens::refresh_token(app, family, now).await?),
        None => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: app.config.access_token_ttl,
        scope,
        id_token,
        refresh_token,
    })
}

async fn client_credentials(
    app: &App,
    client: &Client,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, Error> {
    grant_allowed(client, "client_credentials")?;
    let scope: Vec<&str> = match params.get("scope")? {
        Some(asked) => {
            let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(bad) = asked.iter().find(|s| **s == "openid" || !client.allows_scope(s)) {
                return Err(
                    OAuthError::invalid_scope(format!("scope {bad} is not allowed for this client")).into(),
                );
            }
            asked
        }
        None => client
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "openid")
            .collect(),
    };
    let scope = scope.join(" ");
    let access_token = tokens::access_token(app, client, &client.id, &scope, None, None, now)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: app.config.access_token_ttl,
        scope,
        id_token: None,
        refresh_token: None,
    })
}
