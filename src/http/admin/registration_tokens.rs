//! `/admin/api/registration-tokens`: initial access tokens for dynamic client registration (RFC 7591
//! §1.2). Super admins only; the token is shown once, at issue, and stored as a hash. Every issue and
//! revocation is audited, and so is a refused attempt.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::edit;
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::services::audit;
use crate::services::registration::{self, TokenRequest};
use crate::store::audit::NewEvent;
use crate::store::registration::RegistrationToken;

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/admin/api/registration-tokens",
            get(list_tokens).post(issue_token),
        )
        .route("/admin/api/registration-tokens/{id}/revoke", post(revoke_token))
}

fn token_json(t: &RegistrationToken, now: i64) -> Value {
    let status = match registration::unusable(t, now) {
        None => "active",
        Some(_) if t.revoked_at.is_some() => "revoked",
        Some(_) if t.expires_at.is_some_and(|e| e <= now) => "expired",
        Some(_) => "used_up",
    };
    json!({
        "id": t.id,
        "department": t.department,
        "note": t.note,
        "max_uses": t.max_uses,
        "uses": t.uses,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
        "created_by": t.created_by,
        "created_at": t.created_at,
        "status": status,
    })
}

async fn record(
    app: &App,
    caller: &Caller,
    address: &str,
    action: &str,
    subject: &str,
    outcome: &str,
    detail: Value,
) -> Result<(), Problem> {
    audit::record(
        &app.db,
        app.now(),
        NewEvent {
            actor: &caller.0.actor,
            action,
            subject,
            client_id: "",
            address,
            outcome,
            detail: detail.to_string(),
        },
    )
    .await
    .map_err(Problem::internal)
}

/// Only super admins hand out the right to register apps; a refusal leaves a trace.
async fn only_super(app: &App, caller: &Caller, address: &str, action: &str) -> Result<(), Problem> {
    if caller.0.is_super() {
        return Ok(());
    }
    record(app, caller, address, action, "", "forbidden", json!({})).await?;
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("not allowed: {action}"),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    expires_in: Option<i64>,
    max_uses: Option<i64>,
    #[serde(default)]
    department: String,
    #[serde(default)]
    note: String,
}

async fn issue_token(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    raw: axum::body::Bytes,
) -> Result<Response, Problem> {
    only_super(&app, &caller, &address, "registration_token.issue").await?;
    let body: IssueBody = if raw.is_empty() {
        IssueBody::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "malformed body", e.to_string()))?
    };
    let now = app.now();
    let (secret, row) = registration::new_token(
        TokenRequest {
            expires_in: body.expires_in,
            max_uses: body.max_uses,
            department: body.department,
            note: body.note,
        },
        &caller.0.actor,
        now,
        app.random.as_ref(),
    )
    .map_err(|(field, message)| Problem::field(field, message))?;
    app.db
        .insert_registration_token(&row)
        .await
        .map_err(Problem::internal)?;
    record(
        &app,
        &caller,
        &address,
        "registration_token.issue",
        &row.id,
        "success",
        json!({ "department": row.department, "max_uses": row.max_uses, "expires_at": row.expires_at }),
    )
    .await?;
    let mut out = token_json(&row, now);
    out["token"] = secret.into();
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn list_tokens(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
) -> Result<Response, Problem> {
    only_super(&app, &caller, &address, "registration_token.list").await?;
    let now = app.now();
    let tokens: Vec<Value> = app
        .db
        .registration_tokens()
        .await
        .map_err(Problem::internal)?
        .iter()
        .map(|t| token_json(t, now))
        .collect();
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

async fn revoke_token(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    only_super(&app, &caller, &address, "registration_token.revoke").await?;
    let now = app.now();
    let revoked = app
        .db
        .revoke_registration_token(&id, now)
        .await
        .map_err(Problem::internal)?;
    let token = edit::found(app.db.registration_token(&id).await, "registration token")?;
    if revoked {
        record(
            &app,
            &caller,
            &address,
            "registration_token.revoke",
            &id,
            "success",
            json!({}),
        )
        .await?;
    }
    Ok(Json(token_json(&token, now)).into_response())
}
