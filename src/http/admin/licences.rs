//! `/admin/api/licence-types`, `/admin/api/licences`, and which licence types an app may receive.
//! The catalogue and the records: scope `yunid:licences` (the e-licence library) or a super admin.
//! Which types an app receives is a data-release decision: super admins only (as in `PATCH` on an app).
//! Every change is audited, a refused one too; events never carry a holder's code (it may be an ID
//! number), only licence identifiers, type codes and counts.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::ctx::Ctx;
use super::edit::{JsonBody, body};
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::services::admin::Role;
use crate::services::licence::{self, LicenceError, LicenceInput};
use crate::store::licences::{LicenceStatus, LicenceType};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/licence-types/{code}", put(put_type))
        .route("/admin/api/licences", post(push))
        .route("/admin/api/licences/import", post(import))
        .route("/admin/api/licences/{id}/status", post(set_status))
        .route("/admin/api/clients/{id}/licence-types", put(allow_types))
}

fn licence_problem(e: LicenceError) -> Problem {
    let field = match &e {
        LicenceError::Id(_) | LicenceError::TypeMismatch => "id",
        LicenceError::UnknownType(_) => "type_code",
        LicenceError::HolderCode(_) | LicenceError::NoHolder => "holder.code",
        LicenceError::HolderType => "holder.code_type",
        LicenceError::Dates(_) => "valid_until",
        LicenceError::Status => "status",
        LicenceError::Area => "area_code",
        LicenceError::Empty(f) => f,
        LicenceError::IssuerCode(_) => "issuer.code",
        LicenceError::Internal(e) => return Problem::from_error(e),
    };
    Problem::field(field, e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeBody {
    name: String,
    authority: String,
    holder_kind: String,
    #[serde(default)]
    released_fields: Vec<String>,
}

async fn put_type(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(code): Path<String>,
    parsed: JsonBody<TypeBody>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let code = code.trim().to_ascii_uppercase();
    ctx.forbid(caller.0.has(&Role::LicenceLibrary), "licence_type.put", &code, "")
        .await?;
    let b = body(parsed)?;
    let well_formed = code.len() == 21
        && code[18..].bytes().all(|c| c.is_ascii_digit())
        && crate::identity::CreditCode::parse_allowing(&code[..18], &|_| true).is_ok();
    if !well_formed {
        return Err(Problem::field(
            "code",
            "a type code is the defining authority's credit code plus 3 digits",
        ));
    }
    if !matches!(b.holder_kind.as_str(), "person" | "org") {
        return Err(Problem::field("holder_kind", "holder_kind is person or org"));
    }
    if b.name.trim().is_empty() {
        return Err(Problem::field("name", "name must not be empty"));
    }
    let ty = LicenceType {
        code,
        name: b.name.trim().to_owned(),
        authority: b.authority.trim().to_owned(),
        holder_kind: b.holder_kind,
        released_fields: b.released_fields,
    };
    let before = app.db.licence_type(&ty.code).await.map_err(Problem::internal)?;
    // Which fields of a type apps that may receive it get, and whose licences it holds, decide what is
    // released to apps already allowed and consented: a super admin's change, not the library's.
    let widens = before.as_ref().is_some_and(|b| {
        b.holder_kind != ty.holder_kind || ty.released_fields.iter().any(|f| !b.released_fields.contains(f))
    });
    ctx.forbid(!widens || caller.0.is_super(), "licence_type.put", &ty.code, "")
        .await?;
    app.db
        .upsert_licence_type(&ty, app.now())
        .await
        .map_err(Problem::internal)?;
    ctx.audit(
        "licence_type.put",
        &ty.code,
        "",
        "success",
        json!({
            "created": before.is_none(), "name": ty.name, "authority": ty.authority,
            "holder_kind": ty.holder_kind, "released_fields": ty.released_fields,
        }),
    )
    .await?;
    Ok(Json(ty).into_response())
}

async fn push(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    parsed: JsonBody<LicenceInput>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.has(&Role::LicenceLibrary), "licence.push", "", "")
        .await?;
    let input = body(parsed)?;
    let row = licence::push(&app.db, &app.secrets, &input, "push", app.now())
        .await
        .map_err(licence_problem)?;
    ctx.audit(
        "licence.push",
        &row.id,
        "",
        "success",
        json!({ "type_code": row.type_code, "status": row.status }),
    )
    .await?;
    tracing::info!(actor = %caller.0.actor, licence = %row.id, "licence pushed");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": row.id, "status": row.status })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ImportQuery {
    #[serde(default)]
    atomic: bool,
}

/// JSON Lines in the body; the report lists each bad line with its number.
async fn import(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Query(q): Query<ImportQuery>,
    text: String,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.has(&Role::LicenceLibrary), "licence.import", "", "")
        .await?;
    let report = licence::import(&app.db, &app.secrets, &text, q.atomic, app.now())
        .await
        .map_err(Problem::internal)?;
    // One event per import, naming every licence it wrote (the body limit bounds the list).
    let outcome = if report.errors.is_empty() {
        "success"
    } else {
        "partial"
    };
    ctx.audit(
        "licence.import",
        "",
        "",
        outcome,
        json!({
            "atomic": q.atomic, "imported": report.imported, "ids": report.ids,
            "bad_lines": report.errors.len(),
        }),
    )
    .await?;
    let status = if report.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let errors: Vec<_> = report
        .errors
        .iter()
        .map(|(line, m)| json!({ "line": line, "message": m }))
        .collect();
    Ok((
        status,
        Json(json!({ "imported": report.imported, "errors": errors })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

async fn set_status(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    parsed: JsonBody<StatusBody>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.has(&Role::LicenceLibrary), "licence.status", &id, "")
        .await?;
    let b = body(parsed)?;
    let Some(status) = LicenceStatus::parse(&b.status) else {
        return Err(Problem::field(
            "status",
            "status must be one of 01, 02, 03, 04, 05, 07, 99",
        ));
    };
    let id = crate::identity::LicenceId::parse(&id).map_err(|e| Problem::field("id", e.to_string()))?;
    let before = app
        .db
        .licence(id.as_str())
        .await
        .map_err(Problem::internal)?
        .map(|l| l.status);
    let found = app
        .db
        .set_licence_status(id.as_str(), status, app.now())
        .await
        .map_err(Problem::internal)?;
    if !found {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not found",
            "no licence with this identifier",
        ));
    }
    ctx.audit(
        "licence.status",
        id.as_str(),
        "",
        "success",
        json!({ "status": b.status, "before": before }),
    )
    .await?;
    Ok(Json(json!({ "id": id.as_str(), "status": b.status })).into_response())
}

/// Lets an app receive more licence types (added to those it may receive already).
async fn allow_types(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(client_id): Path<String>,
    parsed: JsonBody<Vec<String>>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    // A data-release decision, as in `PATCH /admin/api/clients/{id}`: the library defines types and
    // pushes records, it does not decide who receives them.
    ctx.forbid(
        caller.0.is_super(),
        "client.licence_types.allow",
        &client_id,
        &client_id,
    )
    .await?;
    let codes = body(parsed)?;
    if app
        .db
        .client(&client_id)
        .await
        .map_err(Problem::internal)?
        .is_none()
    {
        return Err(Problem::new(StatusCode::NOT_FOUND, "not found", "no such client"));
    }
    for code in &codes {
        if app
            .db
            .licence_type(code)
            .await
            .map_err(Problem::internal)?
            .is_none()
        {
            return Err(Problem::field(
                "type_code",
                format!("{code} is not in the licence type catalogue"),
            ));
        }
    }
    for code in &codes {
        app.db
            .allow_licence_type(&client_id, code)
            .await
            .map_err(Problem::internal)?;
    }
    ctx.audit(
        "client.licence_types.allow",
        &client_id,
        &client_id,
        "success",
        json!({ "licence_types": codes }),
    )
    .await?;
    Ok(Json(json!({ "client_id": client_id, "licence_types": codes })).into_response())
}
