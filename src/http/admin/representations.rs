//! `/admin/api/organisations/{id}/representations` and `/admin/api/representations/{id}`: who may act for
//! an organisation. Recording a representation from the business registry is a super admin's; a counter
//! clerk records an agent appointment a representative makes in person, under the appointment rules of
//! `services::identity`. Revoking takes effect at once for apps: refresh and userinfo check the
//! representation on every call.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ctx::Ctx;
use super::edit::{self, JsonBody, body, if_match, tagged};
use super::orgs::{identity_problem, load_org};
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::services::identity::{self, IdentityError, NewRepresentation};
use crate::store::orgs::{Matters, Representation, Role};

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/admin/api/organisations/{id}/representations",
            get(list).post(appoint),
        )
        .route(
            "/admin/api/representations/{id}",
            get(read).patch(update).delete(revoke),
        )
}

/// `acts`: whether the representation gives authority now, under the rule acting uses
/// ([`identity::in_force`]: its organisation, binding, holder and every appointer above it).
fn rep_json(r: &Representation, acts: bool, now: i64) -> Value {
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
        "acts": acts,
        "version": r.version,
        "appointed_under": r.appointed_under,
    })
}

fn role(raw: &str) -> Result<Role, Problem> {
    Role::parse(raw).ok_or_else(|| Problem::field("role", "role is legal_representative, manager or agent"))
}

fn matters(raw: &Value) -> Result<Matters, Problem> {
    serde_json::from_value(raw.clone())
        .map_err(|_| Problem::field("matters", "matters is \"all\" or a list of matter codes"))
}

async fn load_rep(app: &App, id: &str) -> Result<Representation, Problem> {
    edit::found(app.db.rep(id).await, "representation")
}

/// A representation as the API shows it.
async fn shown(app: &App, rep: &Representation, now: i64) -> Result<Value, Problem> {
    let acts = identity::in_force(&app.db, rep, now)
        .await
        .map_err(|e| Problem::internal(anyhow::anyhow!("{e}")))?;
    Ok(rep_json(rep, acts, now))
}

async fn list(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "representation.list", &id, "")
        .await?;
    let org = load_org(&app, &id).await?;
    let now = app.now();
    let reps = app.db.reps_of_org(&org.id).await.map_err(Problem::internal)?;
    let mut list: Vec<Value> = Vec::with_capacity(reps.len());
    for r in &reps {
        list.push(shown(&app, r, now).await?);
    }
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
    let ctx = Ctx::of(&app, &caller, &address);
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
    let rep = identity::appoint(
        &app.db,
        admin,
        new,
        b.appointed_by.as_deref(),
        now,
        app.random.as_ref(),
    )
    .await
    .map_err(|e| {
        let field = match &e {
            IdentityError::Forbidden(m) if *m == identity::SELF_APPOINTMENT => "person_id",
            _ if b.appointed_by.is_some() => "appointed_by",
            _ => "role",
        };
        identity_problem(e, field)
    })?;
    ctx.audit(
        "representation.create",
        &rep.id,
        "",
        "success",
        json!({ "org_id": rep.org_id, "person_id": rep.person_id, "role": rep.role.as_str(),
                "appointed_by": b.appointed_by }),
    )
    .await?;
    Ok(tagged(
        StatusCode::CREATED,
        rep.version,
        shown(&app, &rep, now).await?,
    ))
}

async fn read(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_read_orgs(), "representation.read", &id, "")
        .await?;
    let rep = load_rep(&app, &id).await?;
    Ok(tagged(
        StatusCode::OK,
        rep.version,
        shown(&app, &rep, app.now()).await?,
    ))
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

async fn update(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
    parsed: JsonBody<RepPatch>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
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
    identity::check_edit(&app.db, &rep)
        .await
        .map_err(|e| identity_problem(e, "matters"))?;
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
    Ok(tagged(
        StatusCode::OK,
        rep.version,
        shown(&app, &rep, app.now()).await?,
    ))
}

/// `DELETE`: revokes (the record stays, with `revoked_at`).
async fn revoke(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
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
    Ok(tagged(StatusCode::OK, rep.version, shown(&app, &rep, now).await?))
}
