//! The UserInfo endpoint (OIDC Core §5.3): GET or POST, bearer token in the header (or, for POST, in
//! the form body, RFC 6750 §2.2).

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{Error, OAuthError};
use crate::http::forms::ProtocolParams;
use crate::services::licence;
use crate::services::oidc::scope::ScopeSet;
use crate::services::oidc::{claims, tokens};

pub async fn userinfo(State(app): State<App>, req: Request) -> Result<Response, Error> {
    let now = app.now();
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned());
    let body_token = if req.method() == Method::POST {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let ProtocolParams(params) = ProtocolParams::from_request(req, &app).await?;
            params.get("access_token")?.map(str::to_owned)
        } else {
            None
        }
    } else {
        None
    };
    let token = match (header_token, body_token) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("access token sent in more than one way").into());
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return Err(Error::BearerMissing),
    };
    let at = tokens::parse_access_token(&app.access_tokens(), &token, now)
        .map_err(|e| Error::Bearer(e.description.to_owned()))?;
    let family_id = at
        .family_id
        .as_deref()
        .ok_or_else(|| Error::Bearer("this token does not represent a person".into()))?;
    if app.db.access_token_revoked(&at.jti, Some(family_id)).await? {
        return Err(Error::Bearer("token revoked".into()));
    }
    let family = app
        .db
        .family(family_id)
        .await?
        .ok_or_else(|| Error::Bearer("unknown grant".into()))?;
    let scope = ScopeSet::parse(at.claims.get("scope").and_then(Value::as_str).unwrap_or(""));
    if !scope.contains("openid") {
        return Err(Error::InsufficientScope(
            "the openid scope was not granted".into(),
        ));
    }
    let client = app
        .db
        .client(&family.client_id)
        .await?
        .ok_or_else(|| Error::Bearer("unknown client".into()))?;
    // The token's scopes that the app still has: an admin who took one away is obeyed at once.
    let scopes = claims::effective_scopes(&client, &scope);
    if !scopes.contains("openid") {
        return Err(Error::InsufficientScope(
            "the openid scope was not granted".into(),
        ));
    }
    let subject = match claims::grant_subject(&app.subjects(), &client, &family, now).await {
        Ok(s) => s,
        Err(claims::SubjectError::Internal(e)) => return Err(e.into()),
        Err(e) => return Err(Error::Bearer(e.to_string())),
    };
    let claims_request: Option<Value> = family
        .claims
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let mut body = claims::subject_claims(
        &app.secrets,
        &client,
        &subject,
        &scopes,
        claims_request.as_ref(),
        "userinfo",
        true,
    )?;
    body.insert("sub".into(), json!(subject.sub));
    let scope_list = scopes.as_strs();
    let asked = licence::Release {
        consented: &family.licence_types,
        scopes: &scope_list,
        claims: claims_request.as_ref(),
        member: "userinfo",
    };
    let licences = licence::release(&app.licence_upstream(), &client, &asked, &subject, now).await?;
    licence::attach(&mut body, licences);
    Ok((
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Json(Value::Object(body)),
    )
        .into_response())
}
