//! Token introspection (RFC 7662) and revocation (RFC 7009), for the client a token was issued to.
//! A token is described as active only while it is unexpired at `now`, unrevoked, and its subject is
//! still one the grant can speak for.

use serde_json::{Value, json};

use crate::crypto;
use crate::services::oidc::claims::{self, SubjectError, Subjects};
use crate::services::oidc::tokens::{self, Verifier};
use crate::store::clients::Client;

#[derive(Debug, thiserror::Error)]
pub enum IntrospectionError {
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for IntrospectionError {
    fn from(e: sqlx::Error) -> Self {
        IntrospectionError::Internal(e.into())
    }
}

/// What introspection and revocation need.
pub struct Ctx<'a> {
    pub verifier: Verifier<'a>,
    pub subjects: Subjects<'a>,
}

/// The RFC 7662 §2.2 answer for `token` presented by `client`: `{"active": false}` for anything that is
/// not a live token of this client.
pub async fn introspect(
    ctx: &Ctx<'_>,
    client: &Client,
    token: &str,
    now: i64,
) -> Result<Value, IntrospectionError> {
    Ok(describe(ctx, client, token, now)
        .await?
        .unwrap_or_else(|| json!({ "active": false })))
}

async fn describe(
    ctx: &Ctx<'_>,
    client: &Client,
    token: &str,
    now: i64,
) -> Result<Option<Value>, IntrospectionError> {
    let db = ctx.subjects.db;
    if let Ok(at) = tokens::parse_access_token(&ctx.verifier, token, now) {
        if at.client_id != client.id || db.access_token_revoked(&at.jti, at.family_id.as_deref()).await? {
            return Ok(None);
        }
        // A person's token is only as good as its subject: a person locked or a representation ended
        // since it was issued makes it inactive, as userinfo already treats it.
        if let Some(family_id) = at.family_id.as_deref() {
            // The grant and its person in one read.
            let Some((family, person)) = db
                .family_with_person(family_id)
                .await?
                .filter(|(f, _)| f.expires_at > now)
            else {
                return Ok(None);
            };
            match claims::grant_subject_of(&ctx.subjects, client, &family, person, now).await {
                Ok(_) => {}
                Err(SubjectError::Internal(e)) => return Err(e.into()),
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
    let Some((state, family, person)) = db.refresh_with_family(&crypto::token_hash(token)).await? else {
        return Ok(None);
    };
    let expires_at = state.expires_at;
    if state.used || expires_at <= now || family.revoked_at.is_some() || family.client_id != client.id {
        return Ok(None);
    }
    // A refresh token is only as good as its subject: an ended representation makes it useless.
    let sub = match claims::grant_subject_of(&ctx.subjects, client, &family, person, now).await {
        Ok(s) => s.sub,
        Err(SubjectError::Internal(e)) => return Err(e.into()),
        Err(_) => return Ok(None),
    };
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": family.scope.to_string(),
        "client_id": client.id,
        "sub": sub,
        "iss": ctx.verifier.iss,
        "exp": expires_at,
        "iat": family.created_at,
    })))
}

/// RFC 7009 §2.1: revokes `token` if it is `client`'s; an unknown token, or another client's, changes
/// nothing (and the answer does not say which).
pub async fn revoke(ctx: &Ctx<'_>, client: &Client, token: &str, now: i64) -> Result<(), IntrospectionError> {
    let db = ctx.subjects.db;
    if let Ok(at) = tokens::parse_access_token(&ctx.verifier, token, now) {
        if at.client_id == client.id {
            db.revoke_jti(&at.jti, at.exp).await?;
        }
    } else if let Some((_, family, _)) = db.refresh_with_family(&crypto::token_hash(token)).await? {
        // Revoking a refresh token also revokes the access tokens of the same grant.
        if family.client_id == client.id {
            db.revoke_family(&family.id, now).await?;
        }
    }
    Ok(())
}
