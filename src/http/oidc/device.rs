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
            | DeviceError::TooManyStarts { .. }
            | DeviceError::Full { .. }
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
        // Too many requests by this app from this network: 429; the live codes at their cap: 503. Either
        // way `temporarily_unavailable` (RFC 6749 §4.1.2.1: "try again later"; RFC 8628 defines
        // `slow_down` at the token endpoint only, and some device libraries take it as fatal here) and
        // how long to wait.
        Err(e @ (DeviceError::TooManyStarts { .. } | DeviceError::Full { .. })) => {
            let (status, retry_after) = match e {
                DeviceError::TooManyStarts { retry_after } => {
                    app.metrics.throttled("device_start");
                    (StatusCode::TOO_MANY_REQUESTS, retry_after)
                }
                DeviceError::Full { retry_after } => {
                    app.metrics.throttled("device_live_cap");
                    (StatusCode::SERVICE_UNAVAILABLE, retry_after)
                }
                _ => (StatusCode::SERVICE_UNAVAILABLE, 1),
            };
            let mut res = (
                status,
                [(header::CACHE_CONTROL, "no-store")],
                Json(serde_json::json!({
                    "error": "temporarily_unavailable",
                    "error_description": e.to_string(),
                })),
            )
                .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
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
