//! The device authorization endpoint (RFC 8628 §3.1–3.2) and the device code grant's arm of the token
//! endpoint (§3.4–3.5). The domain is `services::device` and `services::oidc::grants::device_code`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::token::presented;
use crate::app::App;
use crate::error::{Error, OAuthError};
use crate::http::forms::{ClientAddr, ProtocolParams};
use crate::services::device::{self, DeviceError};
use crate::services::oidc::client_auth;

impl From<DeviceError> for Error {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::NotRegistered => OAuthError::unauthorized_client(e.to_string()).into(),
            DeviceError::NoScope => OAuthError::invalid_scope(e.to_string()).into(),
            DeviceError::UnknownCode
            | DeviceError::Throttled
            | DeviceError::TooManyStarts
            | DeviceError::NotShown
            | DeviceError::TooWeak => OAuthError::invalid_request(e.to_string()).into(),
            DeviceError::Internal(e) => e.into(),
        }
    }
}

/// `POST /device_authorization`: the client authenticates as at the token endpoint.
pub async fn authorize(
    State(app): State<App>,
    headers: HeaderMap,
    ClientAddr(address): ClientAddr,
    ProtocolParams(params): ProtocolParams,
) -> Result<Response, Error> {
    let now = app.now();
    let client = client_auth::authenticate(&app.client_auth(), &presented(&headers, &params)?, now).await?;
    let started = match device::start(&app.device(), &client, params.get("scope")?, &address, now).await {
        Ok(s) => s,
        // Too many requests from this address: 429 with RFC 8628's `slow_down` (the device waits and asks
        // again), and how long to wait.
        Err(e @ DeviceError::TooManyStarts) => {
            app.metrics.throttled("device_start");
            let mut res = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CACHE_CONTROL, "no-store")],
                Json(serde_json::json!({ "error": "slow_down", "error_description": e.to_string() })),
            )
                .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(device::START_WINDOW));
            return Ok(res);
        }
        Err(e) => return Err(e.into()),
    };
    crate::services::audit::record_quietly(
        &app.db,
        app.now(),
        crate::store::audit::NewEvent {
            actor: &format!("client:{}", client.id),
            action: "device.authorize",
            subject: &client.id,
            client_id: &client.id,
            address: &address,
            outcome: "success",
            detail: serde_json::json!({ "expires_in": started.expires_in }).to_string(),
        },
    )
    .await;
    Ok((
        [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
        Json(started),
    )
        .into_response())
}
