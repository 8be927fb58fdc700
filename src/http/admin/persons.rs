//! `/admin/api/persons/{id}`: a person's record, created and edited at the counter — create (with an
//! optional initial password, checked like self-registration), read, edit name and phone (`If-Match`),
//! search by name, and a temporary password.
//!
//! Password reset: the person stands at the counter, identity checked in person, often because the
//! phone is lost too — so no link can be sent. The clerk gets a temporary password, shown once, to hand
//! over on paper; it works for [`TEMPORARY_PASSWORD_LIFETIME`] and must be replaced at the first
//! sign-in. The person's sessions end at once.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::edit::{self, JsonBody, body, conflict_or_internal, if_match, tagged};
use super::manage::{Ctx, end_all_sessions, person_json};
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::identity::Phone;
use crate::services::password;
use crate::services::registry::{self, NewPerson, PersonError};
use crate::store::persons::{PersonEdit, PersonRow};

/// How long a counter-issued temporary password works.
pub const TEMPORARY_PASSWORD_LIFETIME: i64 = 24 * 3600;

pub fn router() -> Router<App> {
    Router::new().route("/admin/api/persons/{id}", get(read).patch(update))
}

fn person_problem(e: PersonError) -> Problem {
    let field = match &e {
        PersonError::IdNumber(_) => "id_number",
        PersonError::Phone(_) => "phone",
        PersonError::Password | PersonError::CommonPassword => "password",
        PersonError::Name => "name",
        PersonError::Conflict => {
            return Problem::new(StatusCode::CONFLICT, "conflict", e.to_string());
        }
        PersonError::Internal(e) => return Problem::from_error(e),
    };
    Problem::field(field, e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPersonBody {
    id_number: String,
    name: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `POST /admin/api/persons`: a person registered at the counter (real-name level 1 until verified).
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    parsed: JsonBody<NewPersonBody>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_register_persons(), "person.create", "", "")
        .await?;
    let b = body(parsed)?;
    let id = registry::add_person(
        &app,
        NewPerson {
            id_number: b.id_number,
            name: b.name,
            // Recorded by a clerk who has the person (and the phone) in front of them.
            phone_verified: b.phone.is_some(),
            phone: b.phone,
            password: b.password,
        },
    )
    .await
    .map_err(person_problem)?;
    ctx.audit("person.create", &id, "", "success", json!({})).await?;
    let person = load(&app, &id).await?;
    let mut res = tagged(StatusCode::CREATED, person.version, person_json(&app, &person));
    if let Ok(v) = format!("/admin/api/persons/{id}").parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

async fn load(app: &App, id: &str) -> Result<PersonRow, Problem> {
    edit::found(app.db.person(id).await, "person")
}

async fn read(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.can_look_up_persons(), "person.read", &id, "")
        .await?;
    let person = load(&app, &id).await?;
    ctx.audit("person.read", &person.id, "", "success", json!({}))
        .await?;
    Ok(tagged(StatusCode::OK, person.version, person_json(&app, &person)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "edit::nullable")]
    phone: Option<Option<String>>,
}

/// `PATCH /admin/api/persons/{id}`: a clerk resets the phone (the old one is lost: sessions end), only a
/// super admin changes the name.
async fn update(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
    parsed: JsonBody<PersonPatch>,
) -> Result<Response, Problem> {
    let admin = &caller.0;
    let ctx = Ctx::of(&app, &caller, &address);
    let b = body(parsed)?;
    let allowed = (b.name.is_none() || admin.can_rename_persons())
        && (b.phone.is_none() || admin.can_register_persons())
        && (admin.can_rename_persons() || admin.can_register_persons());
    ctx.forbid(allowed, "person.update", &id, "").await?;
    let person = load(&app, &id).await?;
    let version = if_match(&headers, person.version)?;
    let name = match &b.name {
        Some(n) => {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 100 {
                return Err(person_problem(PersonError::Name));
            }
            n.to_owned()
        }
        None => person.name.clone(),
    };
    let phone = match &b.phone {
        Some(Some(p)) => Some(
            Phone::parse(p)
                .map_err(|e| Problem::field("phone", e.to_string()))?
                .as_str()
                .to_owned(),
        ),
        Some(None) => None,
        None => person.phone.clone(),
    };
    let phone_changed = phone != person.phone;
    let edit = PersonEdit {
        name: &name,
        phone: phone.as_deref(),
        phone_verified: if phone_changed {
            phone.is_some()
        } else {
            person.phone_verified
        },
    };
    let now = app.now();
    if !app
        .db
        .edit_person(&person.id, version, &edit, now)
        .await
        .map_err(|e| conflict_or_internal(e, "a person with this phone"))?
    {
        return Err(edit::stale());
    }
    if phone_changed {
        // SMS codes went to the old number: whoever holds it keeps nothing.
        end_all_sessions(&app, &person.id).await?;
    }
    ctx.audit(
        "person.update",
        &person.id,
        "",
        "success",
        json!({ "name": b.name.is_some(), "phone": phone_changed }),
    )
    .await?;
    let person = load(&app, &id).await?;
    Ok(tagged(StatusCode::OK, person.version, person_json(&app, &person)))
}

/// Readable and long enough: 16 characters from 32 unambiguous ones (80 bits).
fn temporary_password() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyzA";
    crate::crypto::random_bytes::<16>()
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect()
}

/// `POST /admin/api/persons/{id}/reset-password`.
pub async fn reset_password(ctx: &Ctx<'_>, id: &str) -> Result<Response, Problem> {
    let app = ctx.app;
    ctx.forbid(ctx.admin.can_register_persons(), "person.reset_password", id, "")
        .await?;
    let person = load(app, id).await?;
    let temporary = temporary_password();
    debug_assert!(password::check_new(&temporary).is_ok());
    let hash = app
        .hasher
        .hash(temporary.clone())
        .await
        .map_err(Problem::internal)?;
    let now = app.now();
    let expires_at = now + TEMPORARY_PASSWORD_LIFETIME;
    app.db
        .set_password(&person.id, &hash, Some(expires_at), now)
        .await
        .map_err(Problem::internal)?;
    end_all_sessions(app, &person.id).await?;
    ctx.audit(
        "person.reset_password",
        &person.id,
        "",
        "success",
        json!({ "expires_at": expires_at }),
    )
    .await?;
    let body: Value = json!({
        "person_id": person.id,
        "temporary_password": temporary,
        "expires_at": expires_at,
        "must_change": true,
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// Persons with exactly this name.
pub async fn find_by_name(ctx: &Ctx<'_>, name: &str) -> Result<Vec<Value>, Problem> {
    ctx.forbid(ctx.admin.can_look_up_persons(), "person.search", "", "")
        .await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Problem::field("name", "a name of 1 to 100 characters"));
    }
    let found = ctx
        .app
        .db
        .persons_by_name(name, 50)
        .await
        .map_err(Problem::internal)?;
    ctx.audit(
        "person.search",
        "",
        "",
        "success",
        json!({ "by": "name", "found": found.len() }),
    )
    .await?;
    Ok(found.iter().map(|p| person_json(ctx.app, p)).collect())
}
