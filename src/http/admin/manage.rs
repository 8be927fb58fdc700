//! `/admin/api/audit…` (search, JSON Lines export, verify) and `/admin/api/keys` (list, rotate).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ctx::Ctx;
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::services::admin::Admin;
use crate::services::audit;
use crate::store::audit::AuditEvent;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/audit", get(search_audit))
        .route("/admin/api/audit/export", get(export_audit))
        .route("/admin/api/audit/verify", get(verify_audit))
        .route("/admin/api/keys", get(list_keys))
        .route("/admin/api/keys/rotate", post(rotate_keys))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    #[serde(default)]
    pub since: i64,
    #[serde(default)]
    pub limit: Option<i64>,
}

pub async fn audit_events(app: &App, admin: &Admin, q: &AuditQuery) -> Result<Vec<Value>, Problem> {
    let departments = admin.departments();
    if !admin.can_read_all_audit() && departments.is_empty() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "not allowed: audit.read",
        ));
    }
    let filter = [
        ("action", &q.action),
        ("actor", &q.actor),
        ("subject", &q.subject),
        ("client_id", &q.client_id),
    ]
    .into_iter()
    .find_map(|(k, v)| v.as_deref().map(|v| (k, v)));
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let events = app
        .db
        .audit_events(filter, q.since, limit)
        .await
        .map_err(Problem::internal)?;
    let mut out = Vec::new();
    for e in events {
        // A department admin sees only the events of the department's apps.
        if !admin.can_read_all_audit() {
            let own = match app.db.client(&e.client_id).await.map_err(Problem::internal)? {
                Some(c) => departments.contains(&c.department.as_str()),
                None => false,
            };
            if !own {
                continue;
            }
        }
        out.push(serde_json::to_value(&e).map_err(Problem::internal)?);
    }
    Ok(out)
}

/// One page of the trail as this admin may see it, newest first, starting below sequence number `before`
/// (the newest when absent); with the `before` of the next (older) page when there is one.
pub async fn newest_audit_events(
    app: &App,
    admin: &Admin,
    before: Option<i64>,
    page: usize,
) -> Result<(Vec<AuditEvent>, Option<i64>), Problem> {
    const BATCH: i64 = 500;
    // A department admin's events may be sparse: scan at most this many rows for one page.
    const SCAN: usize = 20_000;
    let departments = admin.departments();
    let all = admin.can_read_all_audit();
    if !all && departments.is_empty() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "not allowed: audit.read",
        ));
    }
    let mut out = Vec::new();
    let mut cursor = before.unwrap_or(i64::MAX);
    let mut scanned = 0;
    loop {
        let batch = app
            .db
            .audit_events_before(cursor, BATCH)
            .await
            .map_err(Problem::internal)?;
        let exhausted = (batch.len() as i64) < BATCH;
        for e in batch {
            scanned += 1;
            cursor = e.seq;
            let visible = all
                || match app.db.client(&e.client_id).await.map_err(Problem::internal)? {
                    Some(c) => departments.contains(&c.department.as_str()),
                    None => false,
                };
            if visible {
                if out.len() == page {
                    // There is an older one: the next page starts below the last one shown.
                    let next = out.last().map(|l: &AuditEvent| l.seq);
                    return Ok((out, next));
                }
                out.push(e);
            }
        }
        if exhausted {
            return Ok((out, None));
        }
        if scanned >= SCAN {
            return Ok((out, Some(cursor)));
        }
    }
}

async fn search_audit(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Problem> {
    Ok(Json(json!({ "events": audit_events(&app, &caller.0, &q).await? })).into_response())
}

/// JSON Lines, one event a line.
async fn export_audit(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Problem> {
    let events = audit_events(&app, &caller.0, &q).await?;
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], body).into_response())
}

async fn verify_audit(State(app): State<App>, caller: Caller) -> Result<Response, Problem> {
    caller.require(caller.0.can_read_all_audit(), "verify the audit trail")?;
    let v = audit::verify(&app.db).await.map_err(Problem::internal)?;
    Ok(Json(v).into_response())
}

async fn list_keys(State(app): State<App>, caller: Caller, _h: HeaderMap) -> Result<Response, Problem> {
    caller.require(caller.0.is_super(), "see keys")?;
    let now = app.now();
    let grace = crate::app::publish_grace(&app.config);
    let entries = crate::keys::rotation::list(&app.db, now, grace)
        .await
        .map_err(Problem::internal)?;
    let keys: Vec<Value> = entries
        .iter()
        .map(|k| {
            let state = if k.is_signing() {
                "active"
            } else if k.is_next() {
                "next"
            } else {
                "retiring"
            };
            json!({
                "kid": k.kid, "alg": k.alg.as_str(), "state": state, "created_at": k.created_at,
                "activated_at": k.activated_at, "retired_at": k.retired_at,
            })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

async fn rotate_keys(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.is_super(), "keys.rotate", "", "").await?;
    let added = crate::keys::rotation::rotate(&app.db, &app.kek, app.now())
        .await
        .map_err(Problem::internal)?;
    // Published here at once; every node publishes it within its refresh interval, then it signs.
    app.reload_keys().await.map_err(Problem::internal)?;
    let kids: Vec<&str> = added.iter().map(|k| k.kid.as_str()).collect();
    ctx.audit("keys.rotate", "", "", "success", json!({ "new": kids }))
        .await?;
    Ok(Json(json!({ "new": kids })).into_response())
}
