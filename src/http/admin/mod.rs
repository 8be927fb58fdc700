//! Admin REST API (first part: the e-licence library's push interface). Callers are automation clients
//! with a client-credentials access token carrying the right admin scope. Errors are RFC 9457 problem
//! details.

mod apps;
mod console;
mod ctx;
mod device_clients;
mod docs;
mod edit;
mod licences;
pub mod manage;
mod orgs;
mod persons;
mod proofing;
mod registration_tokens;
mod representations;
mod upstreams;

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::services::admin::Admin;
use crate::services::admin_access::{self, Refusal};
use crate::services::oidc::tokens;

pub fn router() -> Router<App> {
    licences::router()
        .merge(manage::router())
        .merge(registration_tokens::router())
        .merge(persons::router())
        .merge(orgs::router())
        .merge(representations::router())
        .merge(apps::router())
        .merge(upstreams::router())
        .merge(proofing::router())
        .merge(device_clients::router())
        .route(
            "/admin/api/openapi.json",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(axum::middleware::from_fn(as_problem))
        .merge(console::router())
        .route("/admin/api/docs", axum::routing::get(docs::show))
}

/// The admin API's OpenAPI document, served as it is and rendered as a page (`/admin/api/docs`).
pub const OPENAPI: &str = include_str!("../../../static/openapi.json");

/// Every API error is an RFC 9457 problem, those that axum's extractors and method routing produce too
/// (a malformed query string, a method the path does not have).
async fn as_problem(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    // Only axum's own plain-text (or empty) rejections: a handler's JSON answer stays as it is (the
    // licence import's 422 report, for one).
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return res;
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let detail = match axum::body::to_bytes(res.into_body(), 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let title = status.canonical_reason().unwrap_or("error");
    let mut res = Problem::new(status, title, detail).into_response();
    if let Some(allow) = allow {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// Refuses NUL characters anywhere in the URL or the JSON body of an API call: PostgreSQL cannot store
/// them in text (a 500 before), and no identifier, name or code contains one.
async fn refuse_nul(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let refuse = |what: &str| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed request",
            format!("NUL characters are not accepted in the {what}"),
        )
        .into_response()
    };
    if req
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().contains("%00"))
    {
        return refuse("URL");
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, crate::http::BODY_LIMIT).await else {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large",
            "the request body is too large",
        )
        .into_response();
    };
    // In JSON a NUL can only be written as the escape \u0000 (a raw one is invalid JSON anyway).
    let escaped = bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000");
    if escaped || bytes.contains(&0) {
        return refuse("body");
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// An RFC 9457 problem.
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<Value>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A validation failure naming the offending field.
    pub fn field(field: &str, message: impl Into<String>) -> Problem {
        let message = message.into();
        Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "invalid input",
            detail: message.clone(),
            errors: vec![json!({ "field": field, "message": message })],
        }
    }

    /// 503 (try again shortly) when the database is unreachable, otherwise 500; logged either way.
    pub fn internal(e: impl Into<anyhow::Error>) -> Problem {
        Problem::from_error(&e.into())
    }

    /// [`Problem::internal`] for an error that is only borrowed.
    pub fn from_error(e: &anyhow::Error) -> Problem {
        if crate::store::is_unavailable_chain(e) {
            tracing::warn!(error = format!("{e:#}"), "admin API: database unavailable");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable",
                "the database cannot be reached; try again shortly",
            );
        }
        tracing::error!(error = format!("{e:#}"), "admin API internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "internal error",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors);
        }
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            Json(body),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        res
    }
}

/// The calling administrator: an automation client (client-credentials token, roles from the admin
/// scopes it still holds) or a person with admin roles signed in to the console with two factors (a
/// token the console obtained; no other app's token is accepted). See `services::admin_access`.
pub struct Caller(pub Admin);

impl Caller {
    pub fn require(&self, allowed: bool, what: &str) -> Result<(), Problem> {
        if allowed {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("not allowed to {what}"),
            ))
        }
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        // RFC 6750 §3: no error code when no token came, `invalid_token` for one that cannot be used here.
        let challenge = |m: &str, value: &'static str| {
            let mut res = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", m).into_response();
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(value),
            );
            res
        };
        let unauthorized = |m: &str| challenge(m, "Bearer realm=\"yunid-admin\", error=\"invalid_token\"");
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| challenge("a bearer token is required", "Bearer realm=\"yunid-admin\""))?;
        let now = app.now();
        let at = tokens::parse_access_token(&app.access_tokens(), token.trim(), now)
            .map_err(|e| unauthorized(e.description))?;
        match app
            .db
            .access_token_revoked(&at.jti, at.family_id.as_deref())
            .await
        {
            Ok(false) => {}
            Ok(true) => return Err(unauthorized("token revoked")),
            Err(e) => return Err(Problem::internal(e).into_response()),
        }
        match admin_access::admin_of(&app.db, &at).await {
            Ok(admin) => Ok(Caller(admin)),
            Err(Refusal::InvalidToken(m)) => Err(unauthorized(m)),
            Err(Refusal::Forbidden(m)) => {
                Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", m).into_response())
            }
            Err(Refusal::Internal(e)) => Err(Problem::from_error(&e).into_response()),
        }
    }
}
