//! `/admin/api/organisations` and `/admin/api/representations`: legal persons (credit code checked, or
//! allow-listed) and who may act for them. Recording a representation from the business registry is a
//! super admin's; a counter clerk records an agent appointment a representative makes in person, under
//! the appointment rules of `services::identity`. Revoking takes effect at once for apps: refresh and
//! userinfo check the representation on every call.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::edit::{self, body, if_match, tagged};
use super::manage::Ctx;
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::identity::{CreditCode, CreditCodeError};
use crate::services::identity::{self, IdentityError, NewRepresentation};
use crate::store::orgs::{Matters, Organisation, Representation, Role};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/organisations", get(list).post(create))
        .route("/admin/api/organisations/{id}", get(read).patch(update))
        .route(
            "/admin/api/organisations/{id}/representations",
            get(list_reps).post(appoint),
        )
        .route(
            "/admin/api/representations/{id}",
            get(read_rep).patch(update_rep).delete(revoke_rep),
        )
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

fn rep_json(r: &Representation, now: i64) -> Value {
    json!({
        "id": r.id,
        "person_id": r.person_id,
        "org_id": r.org_id,
        "role": r.role.as_str(),
        "matters": r.matters,
        "valid_from": r.valid_from,
        "valid_until": r.valid_until,
        "granted_by": r.granted_by,
        "revoked_at": r.revoked_at,
        "current": r.is_current(now),
        "version": r.version,
    })
}

/// The field an identity rule refusal is about.
fn identity_problem(e: IdentityError, rule_field: &str) -> Problem {
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

fn role(raw: &str) -> Result<Role, Problem> {
    Role::parse(raw).ok_or_else(|| Problem::field("role", "role is legal_representative, manager or agent"))
}

fn matters(raw: &Value) -> Result<Matters, Problem> {
    serde_json::from_value(raw.clone())
        .map_err(|_| Problem::field("matters", "matters is \"all\" or a list of matter codes"))
}

fn ctx<'a>(app: &'a App, caller: &'a Caller, address: &'a str) -> Ctx<'a> {
    Ctx {
        app,
        admin: &caller.0,
        address,
    }
}

async fn load_org(app: &App, id: &str) -> Result<Organisation, Problem> {
    app.db
        .org(id)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "not found", "no such organisation"))
}

async fn load_rep(app: &App, id: &str) -> Result<Representation, Problem> {
    app.db
        .rep(id)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "not found", "no such representation"))
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
    let ctx = ctx(&app, &caller, &address);
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
    let ctx = ctx(&app, &caller, &address);
    ctx.forbid(caller.0.can_manage_orgs(), "organisation.create", "", "")
        .await?;
    let b = body(parsed)?;
    if b.org_type.chars().count() > 64 {
        return Err(Problem::field("org_type", "at most 64 characters"));
    }
    let org = identity::add_org(&app, &b.credit_code, &b.name, &b.org_type)
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
    let ctx = ctx(&app, &caller, &address);
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
    let ctx = ctx(&app, &caller, &address);
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
    if let Some(status) = b.status {
        if !matches!(status.as_str(), "active" | "inactive") {
            return Err(Problem::field("status", "status is active or inactive"));
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
        json!({ "status": org.status }),
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
    let ctx = ctx(&app, &caller, &address);
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

async fn list_reps(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = ctx(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "representation.list", &id, "")
        .await?;
    let org = load_org(&app, &id).await?;
    let now = app.now();
    let reps = app.db.reps_of_org(&org.id).await.map_err(Problem::internal)?;
    let list: Vec<Value> = reps.iter().map(|r| rep_json(r, now)).collect();
    Ok(Json(json!({ "representations": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRep {
    person_id: String,
    role: String,
    matters: Value,
    #[serde(default)]
    valid_from: Option<i64>,
    #[serde(default)]
    valid_until: Option<i64>,
    /// The person (a legal representative or manager) who appoints an agent, at the counter.
    #[serde(default)]
    appointed_by: Option<String>,
}

/// Records a representation (super admin, from the business registry), or an agent appointment made by
/// a representative (counter clerk or super admin; the appointment rules apply).
async fn appoint(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(org_id): Path<String>,
    parsed: JsonBody<NewRep>,
) -> Result<Response, Problem> {
    let ctx = ctx(&app, &caller, &address);
    let admin = &caller.0;
    ctx.forbid(
        admin.can_manage_orgs() || admin.can_record_appointments(),
        "representation.create",
        &org_id,
        "",
    )
    .await?;
    let b = body(parsed)?;
    ctx.forbid(
        b.appointed_by.is_some() || admin.can_manage_orgs(),
        "representation.create",
        &org_id,
        "",
    )
    .await?;
    let org = load_org(&app, &org_id).await?;
    let now = app.now();
    let new = NewRepresentation {
        person_id: b.person_id,
        org_id: org.id,
        role: role(&b.role)?,
        matters: matters(&b.matters)?,
        valid_from: b.valid_from.unwrap_or(now),
        valid_until: b.valid_until,
    };
    let rep = match &b.appointed_by {
        Some(appointer) => identity::appoint_agent(&app, appointer, new, now)
            .await
            .map_err(|e| identity_problem(e, "appointed_by"))?,
        None => identity::grant(&app, new, &admin.actor)
            .await
            .map_err(|e| identity_problem(e, "role"))?,
    };
    ctx.audit(
        "representation.create",
        &rep.id,
        "",
        "success",
        json!({ "org_id": rep.org_id, "person_id": rep.person_id, "role": rep.role.as_str(),
                "appointed_by": b.appointed_by }),
    )
    .await?;
    Ok(tagged(StatusCode::CREATED, rep.version, rep_json(&rep, now)))
}

async fn read_rep(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = ctx(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "representation.read", &id, "")
        .await?;
    let rep = load_rep(&app, &id).await?;
    Ok(tagged(StatusCode::OK, rep.version, rep_json(&rep, app.now())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepPatch {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    matters: Option<Value>,
    #[serde(default)]
    valid_from: Option<i64>,
    #[serde(default, deserialize_with = "edit::nullable")]
    valid_until: Option<Option<i64>>,
}

async fn update_rep(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
    parsed: JsonBody<RepPatch>,
) -> Result<Response, Problem> {
    let ctx = ctx(&app, &caller, &address);
    ctx.forbid(caller.0.can_manage_orgs(), "representation.update", &id, "")
        .await?;
    let b = body(parsed)?;
    let mut rep = load_rep(&app, &id).await?;
    let version = if_match(&headers, rep.version)?;
    if rep.revoked_at.is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "a revoked representation cannot be changed",
        ));
    }
    let new = NewRepresentation {
        person_id: rep.person_id.clone(),
        org_id: rep.org_id.clone(),
        role: b.role.as_deref().map(role).transpose()?.unwrap_or(rep.role),
        matters: match &b.matters {
            Some(m) => matters(m)?,
            None => rep.matters.clone(),
        },
        valid_from: b.valid_from.unwrap_or(rep.valid_from),
        valid_until: b.valid_until.unwrap_or(rep.valid_until),
    };
    identity::check_window(&new).map_err(|e| identity_problem(e, "role"))?;
    rep.role = new.role;
    rep.matters = new.matters;
    rep.valid_from = new.valid_from;
    rep.valid_until = new.valid_until;
    if !app.db.edit_rep(&rep, version).await.map_err(Problem::internal)? {
        return Err(edit::stale());
    }
    ctx.audit(
        "representation.update",
        &rep.id,
        "",
        "success",
        json!({ "role": rep.role.as_str() }),
    )
    .await?;
    let rep = load_rep(&app, &id).await?;
    Ok(tagged(StatusCode::OK, rep.version, rep_json(&rep, app.now())))
}

/// `DELETE`: revokes (the record stays, with `revoked_at`).
async fn revoke_rep(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let ctx = ctx(&app, &caller, &address);
    let admin = &caller.0;
    ctx.forbid(
        admin.can_manage_orgs() || admin.can_record_appointments(),
        "representation.revoke",
        &id,
        "",
    )
    .await?;
    let rep = load_rep(&app, &id).await?;
    let version = if_match(&headers, rep.version)?;
    if rep.revoked_at.is_some() {
        return Err(Problem::new(StatusCode::CONFLICT, "conflict", "already revoked"));
    }
    let now = app.now();
    if !app
        .db
        .revoke_rep_at(&rep.id, version, now)
        .await
        .map_err(Problem::internal)?
    {
        return Err(edit::stale());
    }
    ctx.audit("representation.revoke", &rep.id, "", "success", json!({}))
        .await?;
    let rep = load_rep(&app, &id).await?;
    Ok(tagged(StatusCode::OK, rep.version, rep_json(&rep, now)))
}
