//! Token introspection (RFC 7662) and revocation (RFC 7009), for the client the token was issued to.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::crypto;
use crate::error::Error;
use crate::http::forms::ProtocolParams;
use crate::services::oidc::{claims, client_auth, tokens};
use crate::store::clients::Client;

pub async fn introspect(
    State(app): State<App>,
    headers: HeaderMap,
    ProtocolParams(params): ProtocolParams,
) -> Result<Response, Error> {
    let now = app.now();
    let presented = super::token::presented(&headers, &params)?;
    let client = client_auth::authenticate(&app.client_auth(), &presented, now).await?;
    let token = params.require("token")?;
    let body = describe(&app, &client, token, now)
        .await?
        .unwrap_or_else(|| json!({ "active": false }));
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

async fn describe(app: &App, client: &Client, token: &str, now: i64) -> Result<Option<Value>, Error> {
    if let Ok(at) = tokens::parse_access_token(&app.access_tokens(), token, now) {
        if at.client_id != client.id
            || app
                .db
                .access_token_revoked(&at.jti, at.family_id.as_deref())
                .await?
        {
            return Ok(None);
        }
        // A person's token is only as good as its subject: a person locked or a representation ended
        // since it was issued makes it inactive, as userinfo already treats it.
        if let Some(family_id) = at.family_id.as_deref() {
            let Some(family) = app.db.family(family_id).await? else {
                return Ok(None);
            };
            match claims::grant_subject(&app.subjects(), client, &family, now).await {
                Ok(_) => {}
                Err(claims::SubjectError::Internal(e)) => return Err(e.into()),
                Err(_) => return Ok(None),
            }
        }
        let c = &at.claims;
        let mut out = json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.get("scope"),
            "client_id": at.client_id,
            "sub": at.sub,
            "aud": c.get("aud"),
            "iss": c.get("iss"),
            "exp": at.exp,
            "iat": c.get("iat"),
            "jti": at.jti,
        });
        for k in ["auth_time", "acr"] {
            if let Some(v) = c.get(k) {
                out[k] = v.clone();
            }
        }
        return Ok(Some(out));
    }
    let Some((state, family, person)) = app.db.refresh_with_family(&crypto::token_hash(token)).await? else {
        return Ok(None);
    };
    let expires_at = state.expires_at;
    if state.used || expires_at <= now || family.revoked_at.is_some() || family.client_id != client.id {
        return Ok(None);
    }
    // A refresh token is only as good as its subject: an ended representation makes it useless.
    let sub = match claims::grant_subject_of(&app.subjects(), client, &family, person, now).await {
        Ok(s) => s.sub,
        Err(claims::SubjectError::Internal(e)) => return Err(e.into()),
        Err(_) => return Ok(None),
    };
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": family.scope,
        "client_id": client.id,
        "sub": sub,
        "iss": app.config.iss(),
        "exp": expires_at,
        "iat": family.created_at,
    })))
}

/// RFC 7009 §2.2: 200 whether or not the token was valid; only the owning client can revoke.
pub async fn revoke(
    State(app): State<App>,
    headers: HeaderMap,
    ProtocolParams(params): ProtocolParams,
) -> Result<Response, Error> {
    let now = app.now();
    let presented = super::token::presented(&headers, &params)?;
    let client = client_auth::authenticate(&app.client_auth(), &presented, now).await?;
    let token = params.require("token")?;
    if let Ok(at) = tokens::parse_access_token(&app.access_tokens(), token, now) {
        if at.client_id == client.id {
            app.db.revoke_jti(&at.jti, at.exp).await?;
        }
    } else if let Some((_, family, _)) = app.db.refresh_with_family(&crypto::token_hash(token)).await? {
        // §2.1: revoking a refresh token also revokes the access tokens of the same grant.
        if family.client_id == client.id {
            app.db.revoke_family(&family.id, now).await?;
        }
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], "").into_response())
}
