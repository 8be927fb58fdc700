//! `/admin/api/organisations`: legal persons, keyed by a credit code that is checked (GB 32100) or
//! allow-listed as a lawful pilot code. Recorded and edited by super admins; read by counter clerks and
//! auditors too.

use crate::store::orgs::OrgStatus;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ctx::Ctx;
use super::edit::{self, JsonBody, body, if_match, tagged};
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::identity::{CreditCode, CreditCodeError};
use crate::services::identity::{self, IdentityError};
use crate::store::orgs::Organisation;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/organisations", get(list).post(create))
        .route("/admin/api/organisations/{id}", get(read).patch(update))
        .route("/admin/api/credit-code-allowlist", post(allow_code))
}

fn org_json(o: &Organisation) -> Value {
    json!({
        "id": o.id,
        "credit_code": o.credit_code,
        "name": o.name,
        "org_type": o.org_type,
        "status": o.status,
        "version": o.version,
    })
}

/// The field an identity rule refusal is about.
pub(super) fn identity_problem(e: IdentityError, rule_field: &str) -> Problem {
    let message = e.to_string();
    match e {
        IdentityError::CreditCode(_) => Problem::field("credit_code", message),
        IdentityError::Conflict => Problem::new(StatusCode::CONFLICT, "conflict", message),
        IdentityError::NotFound("person") => Problem::field("person_id", message),
        IdentityError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not found", message),
        IdentityError::Forbidden(_) => Problem::field(rule_field, message),
        IdentityError::Invalid(m) => {
            let field = if m.contains("matters") {
                "matters"
            } else if m.contains("valid_until") {
                "valid_until"
            } else {
                "name"
            };
            Problem::field(field, message)
        }
        IdentityError::Internal(e) => Problem::internal(e),
    }
}

pub(super) async fn load_org(app: &App, id: &str) -> Result<Organisation, Problem> {
    edit::found(app.db.org(id).await, "organisation")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

async fn list(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Query(q): Query<Page>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "organisation.list", "", "")
        .await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0).max(0);
    let orgs = app.db.orgs(limit, offset).await.map_err(Problem::internal)?;
    let list: Vec<Value> = orgs.iter().map(org_json).collect();
    Ok(Json(json!({ "organisations": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    credit_code: String,
    name: String,
    #[serde(default)]
    org_type: String,
}

async fn create(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    parsed: JsonBody<NewOrg>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_manage_orgs(), "organisation.create", "", "")
        .await?;
    let b = body(parsed)?;
    if b.org_type.chars().count() > 64 {
        return Err(Problem::field("org_type", "at most 64 characters"));
    }
    let org = identity::add_org(
        &app.db,
        &b.credit_code,
        &b.name,
        &b.org_type,
        app.now(),
        app.random.as_ref(),
    )
    .await
    .map_err(|e| identity_problem(e, "credit_code"))?;
    ctx.audit(
        "organisation.create",
        &org.id,
        "",
        "success",
        json!({ "credit_code": org.credit_code }),
    )
    .await?;
    Ok(tagged(StatusCode::CREATED, org.version, org_json(&org)))
}

async fn read(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "organisation.read", &id, "")
        .await?;
    let org = load_org(&app, &id).await?;
    Ok(tagged(StatusCode::OK, org.version, org_json(&org)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    org_type: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// The refusal of a status change of an organisation the registry reported gone, revoked or cancelled.
pub const REGISTRY_OVERRIDE: &str = "the registry reported this organisation gone, revoked or cancelled: only a super admin changes its status";

/// Name, type, status (`active`, or `inactive`: no one acts for it while inactive). The credit code is
/// the organisation's identity and does not change.
async fn update(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
    parsed: JsonBody<OrgPatch>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_manage_orgs(), "organisation.update", &id, "")
        .await?;
    let b = body(parsed)?;
    let mut org = load_org(&app, &id).await?;
    let version = if_match(&headers, org.version)?;
    if let Some(name) = b.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Problem::field(
                "name",
                "an organisation name of 1 to 200 characters is required",
            ));
        }
        name.clone_into(&mut org.name);
    }
    if let Some(t) = b.org_type {
        if t.chars().count() > 64 {
            return Err(Problem::field("org_type", "at most 64 characters"));
        }
        org.org_type = t.trim().to_owned();
    }
    let before = org.status;
    if let Some(status) = b.status {
        let Some(status) =
            OrgStatus::parse(&status).filter(|s| matches!(s, OrgStatus::Active | OrgStatus::Inactive))
        else {
            return Err(Problem::field("status", "status is active or inactive"));
        };
        // The registry reported the enterprise gone, revoked or cancelled: setting its organisation
        // active again revives every representation an admin recorded for it (those have no binding
        // to hold them). Only a super admin overrides the registry, audited with the status overridden.
        if before.is_registrys() && status != before && !caller.0.is_super() {
            ctx.audit(
                "organisation.update",
                &org.id,
                "",
                "forbidden",
                json!({ "status": status, "registry_status": before }),
            )
            .await?;
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                REGISTRY_OVERRIDE,
            ));
        }
        org.status = status;
    }
    if !app
        .db
        .edit_org(&org, version, app.now())
        .await
        .map_err(Problem::internal)?
    {
        return Err(edit::stale());
    }
    ctx.audit(
        "organisation.update",
        &org.id,
        "",
        "success",
        json!({ "status": org.status, "from": before }),
    )
    .await?;
    let org = load_org(&app, &id).await?;
    Ok(tagged(StatusCode::OK, org.version, org_json(&org)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowBody {
    credit_code: String,
}

/// Allow-lists a lawful early pilot code that fails only the GB 32100 check character.
async fn allow_code(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    parsed: JsonBody<AllowBody>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_manage_orgs(), "credit_code.allow", "", "")
        .await?;
    let b = body(parsed)?;
    let code = b.credit_code.trim().to_ascii_uppercase();
    match CreditCode::parse(&code) {
        Err(CreditCodeError::CheckCharacter { .. }) => {}
        Ok(_) => {
            return Err(Problem::field(
                "credit_code",
                "this code is valid as it is; only codes failing the check character are allow-listed",
            ));
        }
        Err(e) => return Err(Problem::field("credit_code", e.to_string())),
    }
    app.db
        .allow_credit_code(&code, &caller.0.actor, app.now())
        .await
        .map_err(Problem::internal)?;
    ctx.audit(
        "credit_code.allow",
        "",
        "",
        "success",
        json!({ "credit_code": code }),
    )
    .await?;
    Ok(Json(json!({ "credit_code": code, "allowed": true })).into_response())
}
