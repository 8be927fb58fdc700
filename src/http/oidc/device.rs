//! The device authorization endpoint (RFC 8628 §3.1–3.2) and the device code grant's arm of the token
//! endpoint (§3.4–3.5). The domain is `services::device` and `services::oidc::grants::device_code`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
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
    let started = device::start(&app.device(), &client, params.get("scope")?, now).await?;
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
