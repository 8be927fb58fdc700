//! Errors: OAuth/OIDC errors carry their RFC code ([`OAuthError`], the domain's); anything else is
//! internal, logged, and shown generically.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use crate::oauth::OAuthError;

/// What a handler returns on failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// 401 `invalid_client`, with a `WWW-Authenticate` challenge (RFC 6749 §5.2).
    #[error("client authentication failed: {0}")]
    ClientAuth(String),
    /// 401 at a bearer-protected resource (RFC 6750 §3).
    #[error("invalid bearer token: {0}")]
    Bearer(String),
    /// 401 with a bare challenge: the request carried no token at all (RFC 6750 §3.1: no error code).
    #[error("no bearer token")]
    BearerMissing,
    /// 403 `insufficient_scope` (RFC 6750 §3.1): a valid token without the scope the resource needs.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    /// 503 `temporarily_unavailable`: the database cannot be reached right now.
    #[error("temporarily unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        if crate::store::is_unavailable_chain(&e) {
            Error::Unavailable(e)
        } else {
            Error::Internal(e)
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        anyhow::Error::from(e).into()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn json_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut body = serde_json::json!({ "error": code });
    if !description.is_empty() {
        body["error_description"] = description.into();
    }
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::OAuth(e) => {
                let status = if e.code == "server_error" {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::BAD_REQUEST
                };
                json_error(status, e.code, &e.description)
            }
            Error::ClientAuth(d) => {
                let mut res = json_error(StatusCode::UNAUTHORIZED, "invalid_client", &d);
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"yunid\", charset=\"UTF-8\""),
                );
                res
            }
            Error::Bearer(d) => {
                let mut res = json_error(StatusCode::UNAUTHORIZED, "invalid_token", &d);
                let challenge = format!(
                    "Bearer realm=\"yunid\", error=\"invalid_token\", error_description=\"{}\"",
                    d.replace(['"', '\\'], "")
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                res
            }
            Error::BearerMissing => {
                let mut res = StatusCode::UNAUTHORIZED.into_response();
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"yunid\""),
                );
                res
            }
            Error::InsufficientScope(d) => {
                let mut res = json_error(StatusCode::FORBIDDEN, "insufficient_scope", &d);
                let challenge = format!(
                    "Bearer realm=\"yunid\", error=\"insufficient_scope\", scope=\"openid\", error_description=\"{}\"",
                    d.replace(['"', '\\'], "")
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                res
            }
            Error::Forbidden(d) => (StatusCode::FORBIDDEN, d).into_response(),
            Error::NotFound => (StatusCode::NOT_FOUND, "not found").into_response(),
            Error::Unavailable(e) => {
                tracing::warn!(error = format!("{e:#}"), "database unavailable");
                let mut res = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the service is temporarily unavailable; try again shortly",
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                res
            }
            Error::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                )
            }
        }
    }
}
