//! The UserInfo endpoint (OIDC Core §5.3): GET or POST, bearer token in the header (or, for POST, in
//! the form body, RFC 6750 §2.2).

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::App;
use crate::error::{Error, OAuthError};
use crate::http::forms::ProtocolParams;

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
    let body = crate::services::oidc::userinfo::userinfo(&app.userinfo(), &token, now).await?;
    Ok((
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Json(Value::Object(body)),
    )
        .into_response())
}
