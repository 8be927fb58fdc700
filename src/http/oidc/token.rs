//! The token endpoint (RFC 6749 §3.2): parses the request, authenticates the client, runs the grant
//! (`services::oidc::grants`) and renders the response.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::error::Error;
use crate::http::forms::ProtocolParams;
use crate::services::oidc::client_auth::{self, Presented};
use crate::services::oidc::grants::{
    self, GrantError, GrantRequest, GrantType, authorization_code, client_credentials, device_code,
    refresh_token,
};
use crate::services::oidc::scope::ScopeSet;
use crate::services::params::Params;
use crate::store::clients::Client;

pub async fn token(
    State(app): State<App>,
    headers: HeaderMap,
    ProtocolParams(params): ProtocolParams,
) -> Result<Response, Error> {
    let now = app.now();
    let grant_type = params.require("grant_type")?;
    let client = client_auth::authenticate(&app.client_auth(), &presented(&headers, &params)?, now).await?;
    let request = request(grant_type, &client, &params)?;
    let response = grants::exchange(&app.grants(), &client, request, now).await?;
    app.metrics.token_issued(grant_type);
    let no_store = [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")];
    Ok((no_store, Json(response)).into_response())
}

/// The grant's parameters, read once the client is known to use the grant (so that a client without
/// it hears `unauthorized_client`, whatever else is missing).
fn request<'a>(grant_type: &str, client: &Client, params: &'a Params) -> Result<GrantRequest<'a>, Error> {
    let kind = GrantType::parse(grant_type).ok_or(GrantError::UnsupportedGrantType)?;
    kind.allowed_for(client)?;
    let scope = || params.get("scope").map(|s| s.map(ScopeSet::parse));
    Ok(match kind {
        GrantType::AuthorizationCode => GrantRequest::AuthorizationCode(authorization_code::Input {
            code: params.require("code")?,
            redirect_uri: params.require("redirect_uri")?,
            code_verifier: params.require("code_verifier")?,
        }),
        GrantType::RefreshToken => GrantRequest::RefreshToken(refresh_token::Input {
            refresh_token: params.require("refresh_token")?,
            scope: scope().map_err(|e| e.description),
        }),
        GrantType::ClientCredentials => {
            GrantRequest::ClientCredentials(client_credentials::Input { scope: scope()? })
        }
        GrantType::DeviceCode => GrantRequest::DeviceCode(device_code::Input {
            device_code: params.require("device_code")?,
        }),
    })
}

/// The client credentials a request presents: `Authorization: Basic`, and the form's.
pub fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, Error> {
    let owned = |name: &str| Ok::<_, Error>(params.get(name)?.map(str::to_owned));
    Ok(Presented {
        basic: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(client_auth::parse_basic),
        client_id: owned("client_id")?,
        client_secret: owned("client_secret")?,
        assertion_type: owned("client_assertion_type")?,
        assertion: owned("client_assertion")?,
    })
}
