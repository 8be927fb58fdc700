//! `/admin/api/proofing/*`: proofing outcomes (checks asked of the authorities) and enterprise bindings,
//! searchable by admins who may look up persons / read organisations; a super admin suspends a binding.
//! Nothing here holds an ID number: checks carry connector, outcome, transaction id, time and address.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::ctx::Ctx;
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::services::proofing::{ProofingError, orgs};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/proofing/checks", get(checks))
        .route("/admin/api/proofing/bindings", get(bindings))
        .route("/admin/api/proofing/bindings/{id}/suspend", post(suspend))
        .route("/admin/api/proofing/bindings/{id}/restore", post(restore))
        .route("/admin/api/proofing/brake", get(brake).delete(clear_brake))
}

/// The proofing brakes tripped (`population`, `registry`): while one is, no node locks (or suspends)
/// automatically.
async fn brake(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "proofing.brake.read", "", "")
        .await?;
    let tripped = app.db.brakes_tripped().await.map_err(Problem::internal)?;
    let list: Vec<_> = tripped
        .iter()
        .map(|(kind, by)| json!({ "kind": kind, "tripped_by": by }))
        .collect();
    let state = crate::services::proofing::brake_state(&app.proofing(), app.now())
        .await
        .map_err(|e| Problem::internal(anyhow::anyhow!("{e}")))?;
    Ok(Json(json!({ "tripped": list, "brakes": state })).into_response())
}

/// A super admin clears the tripped brakes (after checking the authority's answers): automatic locks
/// and suspensions resume, still at most the brake per 24 hours. Audited (`proofing.brake.clear`).
async fn clear_brake(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.is_super(), "proofing.brake.clear", "", "")
        .await?;
    let cleared = app
        .db
        .clear_brakes(&caller.0.actor, app.now())
        .await
        .map_err(Problem::internal)?;
    ctx.audit(
        "proofing.brake.clear",
        "proofing",
        "",
        "success",
        json!({ "cleared": cleared }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksQuery {
    person_id: Option<String>,
    connector: Option<String>,
    outcome: Option<String>,
    limit: Option<i64>,
}

async fn checks(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Query(q): Query<ChecksQuery>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_look_up_persons(), "proofing.checks", "", "")
        .await?;
    let list = app
        .db
        .proofing_checks(
            q.person_id.as_deref(),
            q.connector.as_deref(),
            q.outcome.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await
        .map_err(Problem::internal)?;
    Ok(Json(json!({ "checks": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingsQuery {
    person_id: Option<String>,
    org_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

async fn bindings(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Query(q): Query<BindingsQuery>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "proofing.bindings", "", "")
        .await?;
    let list = app
        .db
        .bindings(
            q.person_id.as_deref(),
            q.org_id.as_deref(),
            q.status.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await
        .map_err(Problem::internal)?;
    Ok(Json(json!({ "bindings": list })).into_response())
}

async fn suspend(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.is_super(), "org.binding.suspend", &id, "")
        .await?;
    binding_answer(orgs::suspend(&app.proofing(), &id, &caller.0.actor, app.now()).await)
}

/// A super admin lifts a suspension the registry's answer made (`orgs::lift`); audited
/// `org.binding.restore`, a refusal `org.binding.restore` forbidden.
async fn restore(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.is_super(), "org.binding.restore", &id, "")
        .await?;
    binding_answer(orgs::lift(&app.proofing(), &id, &caller.0.actor, app.now()).await)
}

/// The binding a suspend or a lift left, or why it was refused.
fn binding_answer<B: serde::Serialize>(result: Result<B, ProofingError>) -> Result<Response, Problem> {
    match result {
        Ok(b) => Ok(Json(json!(b)).into_response()),
        Err(ProofingError::NotFound) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not found",
            "no such binding",
        )),
        Err(ProofingError::Invalid(m)) => Err(Problem::new(StatusCode::CONFLICT, "conflict", m)),
        Err(e) => Err(Problem::internal(anyhow::anyhow!("{e}"))),
    }
}
