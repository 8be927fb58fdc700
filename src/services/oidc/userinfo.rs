//! The UserInfo answer (OIDC Core §5.3): the claims a person's access token releases now — its scopes
//! that the app still has, about a subject still active and still represented.

use serde_json::{Map, Value, json};

use crate::services::licence::{self, Release};
use crate::services::oidc::Licences;
use crate::services::oidc::claims::{self, SubjectError, Subjects};
use crate::services::oidc::scope::ScopeSet;
use crate::services::oidc::tokens::{self, Verifier};

/// Why no claims are released.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    /// RFC 6750 §3.1 `invalid_token` (401): the description.
    #[error("{0}")]
    InvalidToken(String),
    /// RFC 6750 §3.1 `insufficient_scope` (403).
    #[error("the openid scope was not granted")]
    NoOpenid,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for UserinfoError {
    fn from(e: sqlx::Error) -> Self {
        UserinfoError::Internal(e.into())
    }
}

/// What answering needs: the token checks, the subjects, the licences.
pub struct Ctx<'a> {
    pub verifier: Verifier<'a>,
    pub subjects: Subjects<'a>,
    pub licences: &'a dyn Licences,
}

/// The claims for a bearer access token, checked at `now`.
pub async fn userinfo(ctx: &Ctx<'_>, token: &str, now: i64) -> Result<Map<String, Value>, UserinfoError> {
    let invalid = |m: &str| UserinfoError::InvalidToken(m.to_owned());
    let db = ctx.subjects.db;
    let at = tokens::parse_access_token(&ctx.verifier, token, now).map_err(|e| invalid(e.description))?;
    let family_id = at
        .family_id
        .as_deref()
        .ok_or_else(|| invalid("this token does not represent a person"))?;
    if db.access_token_revoked(&at.jti, Some(family_id)).await? {
        return Err(invalid("token revoked"));
    }
    // The grant and its person in one read (the subject check below uses this person).
    let (family, person) = db
        .family_with_person(family_id)
        .await?
        .ok_or_else(|| invalid("unknown grant"))?;
    // A grant that has run out (a kiosk app's short session) answers for none of its tokens.
    if family.expires_at <= now {
        return Err(invalid("the grant has ended"));
    }
    let scope = ScopeSet::parse(at.claims.get("scope").and_then(Value::as_str).unwrap_or(""));
    if !scope.contains("openid") {
        return Err(UserinfoError::NoOpenid);
    }
    let client = db
        .client(&family.client_id)
        .await?
        .ok_or_else(|| invalid("unknown client"))?;
    // The token's scopes that the app still has: an admin who took one away is obeyed at once.
    let scopes = claims::effective_scopes(&client, &scope);
    if !scopes.contains("openid") {
        return Err(UserinfoError::NoOpenid);
    }
    let subject = match claims::grant_subject_of(&ctx.subjects, &client, &family, person, now).await {
        Ok(s) => s,
        Err(SubjectError::Internal(e)) => return Err(e.into()),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    let claims_request: Option<Value> = family
        .claims
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let mut body = claims::subject_claims(
        ctx.subjects.secrets,
        &client,
        &subject,
        &scopes,
        claims_request.as_ref(),
        "userinfo",
        true,
    )?;
    body.insert("sub".into(), json!(subject.sub));
    let asked = Release {
        consented: &family.licence_types,
        scopes: &scopes,
        claims: claims_request.as_ref(),
        member: "userinfo",
    };
    let licences = ctx.licences.release(&client, &asked, &subject, now).await?;
    licence::attach(&mut body, licences);
    Ok(body)
}
