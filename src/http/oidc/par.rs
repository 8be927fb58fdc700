//! Pushed Authorization Requests (RFC 9126): the client posts its request, gets a single-use
//! `request_uri` valid for at most 90 seconds.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::error::{Error, OAuthError};
use crate::http::forms::ProtocolParams;
use crate::http::pending::oauth;
use crate::services::authn::steps;
use crate::services::oidc::authorize::{self, Rejection};
use crate::services::oidc::client_auth;

pub async fn push(
    State(app): State<App>,
    headers: HeaderMap,
    ProtocolParams(params): ProtocolParams,
) -> Result<Response, Error> {
    let now = app.now();
    let presented = super::token::presented(&headers, &params)?;
    let client = client_auth::authenticate(&app.client_auth(), &presented, now).await?;
    if params.get("client_id")?.is_some_and(|id| id != client.id) {
        return Err(OAuthError::invalid_request("client_id does not match the authenticated client").into());
    }
    if params.get("request_uri")?.is_some() {
        return Err(OAuthError::invalid_request("request_uri is not allowed in a pushed request").into());
    }
    let req = authorize::trusted_target(&params, Some(&client))
        .and_then(|target| authorize::validate(&params, &client, target))
        .map_err(|r| match r {
            Rejection::Page(m) => OAuthError::invalid_request(m.to_string()),
            Rejection::Redirect(_, e) => oauth(&e),
        })?;
    let uri = steps::push(&app.authn(), &client, &req, app.config.par_ttl, now).await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "request_uri": uri, "expires_in": app.config.par_ttl })),
    )
        .into_response())
}
