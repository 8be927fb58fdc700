//! Dynamic client registration: `POST /connect/register` (RFC 7591 §3) and the client configuration
//! endpoint `GET`/`PUT`/`DELETE /connect/register/{client_id}` (RFC 7592 §2). Answers 404 unless
//! `dynamic_registration` is on. (`/register` is the citizens' self-registration page.)

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::App;
use crate::error::{Error, OAuthError};
use crate::http::forms::ClientAddr;
use crate::services::registration::{self, Caller, RegistrationError};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn render(e: RegistrationError) -> Response {
    match e {
        RegistrationError::InvalidToken(d) => Error::Bearer(d.into()).into_response(),
        RegistrationError::Metadata(e) => Error::OAuth(OAuthError {
            code: e.code,
            description: e.description,
        })
        .into_response(),
        RegistrationError::Internal(e) => Error::from(e).into_response(),
    }
}

/// The JSON body, or `null` when it is not JSON: the tokens are checked first, then the body is refused
/// as `invalid_client_metadata` for not being an object.
fn json_body(raw: &Bytes) -> Value {
    serde_json::from_slice(raw).unwrap_or(Value::Null)
}

/// Who calls (bearer token, address); `None` without `dynamic_registration`, when the endpoints do not
/// exist (404).
fn caller<'a>(app: &App, headers: &'a HeaderMap, address: &'a str) -> Option<Caller<'a>> {
    app.config.dynamic_registration.then(|| Caller {
        bearer: bearer(headers),
        address,
    })
}

fn respond(status: StatusCode, result: Result<Value, RegistrationError>) -> Response {
    match result {
        Ok(body) => (status, axum::Json(body)).into_response(),
        Err(e) => render(e),
    }
}

pub async fn register(
    State(app): State<App>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let Some(caller) = caller(&app, &headers, &address) else {
        return Error::NotFound.into_response();
    };
    let body = json_body(&raw);
    let now = app.now();
    respond(
        StatusCode::CREATED,
        registration::register(&app.registration(), caller, &body, now).await,
    )
}

pub async fn read(
    State(app): State<App>,
    ClientAddr(address): ClientAddr,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(caller) = caller(&app, &headers, &address) else {
        return Error::NotFound.into_response();
    };
    let now = app.now();
    respond(
        StatusCode::OK,
        registration::read(&app.registration(), &client_id, caller, now).await,
    )
}

pub async fn update(
    State(app): State<App>,
    ClientAddr(address): ClientAddr,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let Some(caller) = caller(&app, &headers, &address) else {
        return Error::NotFound.into_response();
    };
    let body = json_body(&raw);
    let now = app.now();
    respond(
        StatusCode::OK,
        registration::update(&app.registration(), &client_id, caller, &body, now).await,
    )
}

pub async fn delete(
    State(app): State<App>,
    ClientAddr(address): ClientAddr,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(caller) = caller(&app, &headers, &address) else {
        return Error::NotFound.into_response();
    };
    let now = app.now();
    match registration::delete(&app.registration(), &client_id, caller, now).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => render(e),
    }
}
