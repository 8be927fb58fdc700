//! Token revocation (RFC 7009): 200 whether or not the token was valid (§2.2); only the owning client
//! can revoke.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::error::Error;
use crate::http::forms::ProtocolParams;
use crate::services::oidc::{client_auth, introspection};

pub async fn revoke(
    State(app): State<App>,
    headers: HeaderMap,
    ProtocolParams(params): ProtocolParams,
) -> Result<Response, Error> {
    let now = app.now();
    let presented = super::token::presented(&headers, &params)?;
    let client = client_auth::authenticate(&app.client_auth(), &presented, now).await?;
    let token = params.require("token")?;
    introspection::revoke(&app.introspection(), &client, token, now).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], "").into_response())
}
