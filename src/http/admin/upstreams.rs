//! `/admin/api/upstreams`: the upstream OpenID Connect providers people may sign in through. Super admins
//! only; every change (and every refused attempt) is audited. The client secret is sealed at rest and
//! never returned (`has_client_secret` says whether one is stored); the audit detail names what changed,
//! never the secret.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::edit::{self, JsonBody};
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::services::audit;
use crate::services::federation::settings::{self, NewUpstream};
use crate::services::federation::{FederationError, Mapping};
use crate::store::audit::NewEvent;
use crate::store::upstreams::UpstreamRow;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/upstreams", get(list).post(create))
        .route("/admin/api/upstreams/{id}", get(show).put(replace))
}

fn upstream_json(u: &UpstreamRow) -> Value {
    let mapping: Mapping = settings::mapping(u);
    json!({
        "id": u.id,
        "display_name": u.display_name,
        "logo_url": u.logo_url,
        "discovery_url": u.discovery_url,
        "client_id": u.client_id,
        "has_client_secret": u.client_secret_enc.is_some(),
        "auth_method": u.auth_method,
        "scopes": u.scopes,
        "mapping": mapping,
        "enabled": u.enabled,
        "source": u.source,
        "version": u.version,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

fn problem(e: FederationError) -> Problem {
    match e {
        FederationError::Setting(field, why) => Problem::field(field, why),
        FederationError::Internal(e) => Problem::internal(e),
        other => Problem::internal(anyhow::anyhow!("{other}")),
    }
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

/// What an audit event says about the settings: everything but the secret (only whether one was set).
fn audit_detail(new: &NewUpstream) -> Value {
    json!({
        "display_name": new.display_name,
        "discovery_url": new.discovery_url,
        "client_id": new.client_id,
        "auth_method": new.auth_method,
        "client_secret_set": new.client_secret.as_ref().is_some_and(|s| !s.0.is_empty()),
        "scopes": new.scopes,
        "mapping": new.mapping,
        "enabled": new.enabled,
    })
}

async fn list(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
) -> Result<Json<Value>, Problem> {
    only_super(&app, &caller, &address, "upstream.list").await?;
    let all: Vec<Value> = app
        .db
        .upstreams()
        .await
        .map_err(Problem::internal)?
        .iter()
        .map(upstream_json)
        .collect();
    Ok(Json(json!({ "upstreams": all })))
}

async fn show(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    only_super(&app, &caller, &address, "upstream.read").await?;
    let u = edit::found(app.db.upstream(&id).await, "upstream")?;
    Ok(edit::tagged(StatusCode::OK, u.version, upstream_json(&u)))
}

async fn create(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    body: JsonBody<NewUpstream>,
) -> Result<Response, Problem> {
    only_super(&app, &caller, &address, "upstream.create").await?;
    let new = edit::body(body)?;
    let id = new.id.clone().ok_or_else(|| Problem::field("id", "required"))?;
    let detail = audit_detail(&new);
    let row = settings::create(&app.federation(), &id, new, app.now())
        .await
        .map_err(problem)?;
    record(
        &app,
        &caller,
        &address,
        "upstream.create",
        &row.id,
        "success",
        detail,
    )
    .await?;
    Ok(edit::tagged(
        StatusCode::CREATED,
        row.version,
        upstream_json(&row),
    ))
}

/// Replaces an upstream's settings (`If-Match` with the version read); a missing `client_secret` keeps
/// the stored one.
async fn replace(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<NewUpstream>,
) -> Result<Response, Problem> {
    only_super(&app, &caller, &address, "upstream.update").await?;
    let new = edit::body(body)?;
    if new.id.as_deref().is_some_and(|given| given != id) {
        return Err(Problem::field("id", "cannot change"));
    }
    let existing = edit::found(app.db.upstream(&id).await, "upstream")?;
    edit::if_match(&headers, existing.version)?;
    let detail = audit_detail(&new);
    let row = settings::update(&app.federation(), &existing, new, app.now())
        .await
        .map_err(problem)?
        .ok_or_else(edit::stale)?;
    record(
        &app,
        &caller,
        &address,
        "upstream.update",
        &row.id,
        "success",
        detail,
    )
    .await?;
    Ok(edit::tagged(StatusCode::OK, row.version, upstream_json(&row)))
}
