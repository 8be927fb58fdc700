//! What every admin edit shares: JSON bodies that refuse unknown fields, and optimistic concurrency
//! with `ETag` / `If-Match` (RFC 9110 §13.1.1, RFC 6585 §3): an edit names the version it was based on,
//! and the store applies it only if the row is still at that version.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::Problem;

/// A handler's JSON body as axum hands it over: parsed, or why not.
pub type JsonBody<T> = Result<Json<T>, JsonRejection>;

/// A JSON body, or a problem naming what is wrong with it (unknown fields included).
pub fn body<T>(parsed: JsonBody<T>) -> Result<T, Problem> {
    parsed
        .map(|Json(v)| v)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "malformed body", e.body_text()))
}

/// For PATCH fields that may be set to null: absent → `None`, null → `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The version an edit may be applied to: the row's `current` version, if the request's `If-Match`
/// names it (or is `*`). No `If-Match` → 428; another version → 412.
pub fn if_match(headers: &HeaderMap, current: i64) -> Result<i64, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition required",
            "send If-Match with the ETag of the version this edit is based on",
        ));
    };
    let value = value.to_str().unwrap_or("");
    // Strong comparison: a weak tag never matches.
    let matches = value.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .is_some_and(|t| t == current.to_string())
    });
    if matches { Ok(current) } else { Err(stale()) }
}

/// The row changed since the caller read it.
pub fn stale() -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition failed",
        "the resource changed since it was read; read it again and reapply the edit",
    )
}

/// A JSON representation with its version as a strong ETag.
pub fn tagged(status: StatusCode, version: i64, json: Value) -> Response {
    let mut res = (status, Json(json)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The row a lookup found, or 404 "no such {what}" (500 if the lookup failed).
pub fn found<T>(row: Result<Option<T>, sqlx::Error>, what: &str) -> Result<T, Problem> {
    row.map_err(Problem::internal)?
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "not found", format!("no such {what}")))
}

/// Maps a unique-key violation to 409 and anything else to 500.
pub fn conflict_or_internal(e: sqlx::Error, what: &str) -> Problem {
    if crate::store::is_unique_violation(&e) {
        Problem::new(StatusCode::CONFLICT, "conflict", format!("{what} already exists"))
    } else {
        Problem::internal(e)
    }
}
