//! `/admin/api/persons/{id}`: a person's record, created and edited at the counter — create (with an
//! optional initial password, checked like self-registration), read, edit name and phone (`If-Match`),
//! search by name, and a temporary password.
//!
//! Password reset: the person stands at the counter, identity checked in person, often because the
//! phone is lost too — so no link can be sent. The clerk gets a temporary password, shown once, to hand
//! over on paper; it works for [`TEMPORARY_PASSWORD_LIFETIME`] and must be replaced at the first
//! sign-in. The person's sessions end at once, and their passkeys are removed unless the clerk passes
//! `keep_passkeys` (a passkey signs in at level 2 on its own: one left behind by whoever took the
//! account over would outlive the reset).
//!
//! Who may act on whom ([`checked_person`], the rule in `services::admin`): an administrator's account
//! is for super admins only, and so is lifting a lock a super admin set.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ctx::{Ctx, end_all_sessions, person_json};
use super::edit::{self, JsonBody, body, conflict_or_internal, if_match, tagged};
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::identity::{Phone, ResidentId};
use crate::services::admin::PersonAction;
use crate::services::admin::persons::{self as admin_persons, Allowed, PersonStatus};
use crate::services::notify::{self, Change};
use crate::services::password;
use crate::services::registry::{NewPerson, PersonError};
use crate::store::persons::{PersonEdit, PersonRow};

/// How long a counter-issued temporary password works.
pub const TEMPORARY_PASSWORD_LIFETIME: i64 = 24 * 3600;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/persons", get(find_persons).post(create))
        .route("/admin/api/persons/{id}", get(read).patch(update))
        .route("/admin/api/persons/{id}/{action}", post(person_action))
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
    let id = app
        .registry()
        .add_person(
            NewPerson {
                id_number: b.id_number,
                name: b.name,
                // Recorded by a clerk who has the person (and the phone) in front of them.
                phone_verified: b.phone.is_some(),
                phone: b.phone,
                password: b.password,
            },
            app.now(),
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

/// Loads the person `id` for `action` (audited as `audit_action`) if this admin may act on them (the
/// rule: `services::admin::persons`): refused attempts are audited and answered 403. Returns the person
/// and whether the action must be recorded loudly (a super admin on a super admin: then also a warning
/// in the log).
pub async fn checked_person(
    ctx: &Ctx<'_>,
    id: &str,
    action: PersonAction,
    audit_action: &str,
) -> Result<(PersonRow, bool), Problem> {
    match admin_persons::person_to_act_on(&ctx.app.db, ctx.admin, id, action).await {
        Ok(Allowed { person, loud }) => {
            if loud {
                tracing::warn!(
                    actor = %ctx.admin.actor,
                    subject = %person.id,
                    action = audit_action,
                    "a super admin acts on another super admin's account"
                );
            }
            Ok((person, loud))
        }
        Err(e) => Err(ctx.refused(e, audit_action, id, "").await),
    }
}

/// The audit detail of an allowed action, marked when it was a super admin's on a super admin.
pub fn marked(mut detail: Value, loud: bool) -> Value {
    if loud && let Some(map) = detail.as_object_mut() {
        map.insert("alert".into(), json!("super_admin_target"));
    }
    detail
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
    let ctx = Ctx::of(&app, &caller, &address);
    let b = body(parsed)?;
    let person = edit_person(&ctx, &id, b, &headers).await?;
    Ok(tagged(StatusCode::OK, person.version, person_json(&app, &person)))
}

/// A phone change from the console: the same edit, based on the version the page showed.
pub async fn change_phone(
    ctx: &Ctx<'_>,
    id: &str,
    phone: Option<String>,
    version: i64,
) -> Result<(), Problem> {
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("\"{version}\"").parse() {
        headers.insert(header::IF_MATCH, v);
    }
    let patch = PersonPatch {
        name: None,
        phone: Some(phone),
    };
    edit_person(ctx, id, patch, &headers).await.map(|_| ())
}

async fn edit_person(
    ctx: &Ctx<'_>,
    id: &str,
    b: PersonPatch,
    headers: &HeaderMap,
) -> Result<PersonRow, Problem> {
    let (app, admin, id) = (ctx.app, ctx.admin, id.to_owned());
    let allowed = (b.name.is_none() || admin.can_rename_persons())
        && (b.phone.is_none() || admin.can_register_persons())
        && (admin.can_rename_persons() || admin.can_register_persons());
    ctx.forbid(allowed, "person.update", &id, "").await?;
    let mut actions = Vec::new();
    if b.name.is_some() {
        actions.push(PersonAction::Rename);
    }
    if b.phone.is_some() || actions.is_empty() {
        actions.push(PersonAction::ChangePhone);
    }
    let mut loud = false;
    for action in actions {
        loud |= checked_person(ctx, &id, action, "person.update").await?.1;
    }
    let person = load(app, &id).await?;
    let version = if_match(headers, person.version)?;
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
        end_all_sessions(app, &person.id).await?;
    }
    ctx.audit(
        "person.update",
        &person.id,
        "",
        "success",
        marked(json!({ "name": b.name.is_some(), "phone": phone_changed }), loud),
    )
    .await?;
    if phone_changed {
        // To the old number: the rightful owner still holds it when someone else had it changed.
        notify::credential_changed(
            &app.sms_outbox(),
            person.phone.as_deref(),
            Change::PhoneChanged,
            app.now(),
        )
        .await;
    }
    load(app, &id).await
}

/// Readable and long enough: 16 characters from 32 unambiguous ones (80 bits).
fn temporary_password() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyzA";
    crate::crypto::random_bytes::<16>()
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect()
}

/// A counter password reset: the temporary password (shown once) and when it stops working.
pub struct Reset {
    pub person_id: String,
    pub temporary_password: String,
    pub expires_at: i64,
    pub passkeys_removed: u64,
}

/// `POST /admin/api/persons/{id}/reset-password` (body `{"keep_passkeys": true}` to keep them).
pub async fn reset_password(ctx: &Ctx<'_>, id: &str, keep_passkeys: bool) -> Result<Response, Problem> {
    let r = reset(ctx, id, keep_passkeys).await?;
    let body: Value = json!({
        "person_id": r.person_id,
        "temporary_password": r.temporary_password,
        "expires_at": r.expires_at,
        "must_change": true,
        "passkeys_removed": r.passkeys_removed,
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// The reset itself, for the API and the console.
pub async fn reset(ctx: &Ctx<'_>, id: &str, keep_passkeys: bool) -> Result<Reset, Problem> {
    let app = ctx.app;
    let (person, loud) =
        checked_person(ctx, id, PersonAction::ResetPassword, "person.reset_password").await?;
    let temporary = temporary_password();
    debug_assert!(password::check_new(&temporary).is_ok());
    let hash = app
        .hasher
        .hash(temporary.clone(), &*app.random)
        .await
        .map_err(Problem::internal)?;
    let now = app.now();
    let expires_at = now + TEMPORARY_PASSWORD_LIFETIME;
    app.db
        .set_password(&person.id, &hash, Some(expires_at), now)
        .await
        .map_err(Problem::internal)?;
    // Sessions end first, so that no session can add a passkey after they are removed.
    end_all_sessions(app, &person.id).await?;
    let passkeys_removed = if keep_passkeys {
        0
    } else {
        app.db
            .delete_passkeys_of(&person.id)
            .await
            .map_err(Problem::internal)?
    };
    ctx.audit(
        "person.reset_password",
        &person.id,
        "",
        "success",
        marked(
            json!({
                "expires_at": expires_at,
                "keep_passkeys": keep_passkeys,
                "passkeys_removed": passkeys_removed,
            }),
            loud,
        ),
    )
    .await?;
    notify::credential_changed(
        &app.sms_outbox(),
        person.phone.as_deref(),
        Change::PasswordReset {
            passkeys_removed: passkeys_removed > 0,
        },
        app.now(),
    )
    .await;
    Ok(Reset {
        person_id: person.id,
        temporary_password: temporary,
        expires_at,
        passkeys_removed,
    })
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonQuery {
    id_number: Option<String>,
    phone: Option<String>,
    name: Option<String>,
}

/// Finds a person by resident ID number (through its keyed hash), by phone, or by name.
async fn find_persons(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Query(q): Query<PersonQuery>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let list = match (q.name.as_deref(), q.id_number.is_none() && q.phone.is_none()) {
        (Some(name), true) => find_by_name(&ctx, name).await?,
        (Some(_), false) => {
            return Err(Problem::field(
                "name",
                "give exactly one of id_number, phone or name",
            ));
        }
        (None, _) => find_person(&ctx, q.id_number.as_deref(), q.phone.as_deref()).await?,
    };
    Ok(Json(json!({ "persons": list })).into_response())
}

pub async fn find_person(
    ctx: &Ctx<'_>,
    id_number: Option<&str>,
    phone: Option<&str>,
) -> Result<Vec<Value>, Problem> {
    let app = ctx.app;
    ctx.forbid(ctx.admin.can_look_up_persons(), "person.search", "", "")
        .await?;
    let found = match (id_number, phone) {
        (Some(n), None) => {
            let id = ResidentId::parse(n).map_err(|e| Problem::field("id_number", e.to_string()))?;
            app.db
                .person_by_id_hash(&app.secrets.id_hash(id.as_str()))
                .await
                .map_err(Problem::internal)?
        }
        (None, Some(p)) => {
            let phone = Phone::parse(p).map_err(|e| Problem::field("phone", e.to_string()))?;
            app.db
                .person_by_phone(phone.as_str())
                .await
                .map_err(Problem::internal)?
        }
        _ => {
            return Err(Problem::field(
                "id_number",
                "give exactly one of id_number, phone or name",
            ));
        }
    };
    let subject = found.as_ref().map(|p| p.id.clone()).unwrap_or_default();
    ctx.audit(
        "person.search",
        &subject,
        "",
        "success",
        json!({ "found": found.is_some() }),
    )
    .await?;
    Ok(found.iter().map(|p| person_json(app, p)).collect())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PersonActionBody {
    /// For `verify`: the document checked at the counter.
    document: Option<String>,
    /// For `reset-password`: keep the person's passkeys (by default they are removed).
    keep_passkeys: Option<bool>,
}

/// `lock`, `unlock`, `disable`, `verify` (counter: real-name level 3), `end-sessions`,
/// `reset-password` (a temporary password, shown once).
async fn person_action(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path((id, action)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> Result<Response, Problem> {
    let body: PersonActionBody = if raw.is_empty() {
        PersonActionBody::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "malformed body", e.to_string()))?
    };
    let ctx = Ctx::of(&app, &caller, &address);
    if action == "reset-password" {
        if body.document.is_some() {
            return Err(Problem::field("document", "only for verify"));
        }
        let keep = body.keep_passkeys.unwrap_or(false);
        return reset_password(&ctx, &id, keep).await;
    }
    if body.keep_passkeys.is_some() {
        return Err(Problem::field("keep_passkeys", "only for reset-password"));
    }
    Ok(Json(act_on_person(&ctx, &id, &action, body.document).await?).into_response())
}

pub async fn act_on_person(
    ctx: &Ctx<'_>,
    id: &str,
    action: &str,
    document: Option<String>,
) -> Result<Value, Problem> {
    let (app, admin) = (ctx.app, ctx.admin);
    let kind = match action {
        "lock" => PersonAction::Lock,
        "disable" => PersonAction::Disable,
        "unlock" => PersonAction::Unlock,
        "verify" => PersonAction::Verify,
        "end-sessions" => PersonAction::EndSessions,
        _ => return Err(Problem::new(StatusCode::NOT_FOUND, "not found", "unknown action")),
    };
    let (person, loud) = checked_person(ctx, id, kind, &format!("person.{action}")).await?;
    let now = app.now();
    let mut detail = json!({});
    match action {
        "lock" | "unlock" | "disable" => {
            let status = PersonStatus::set_by(kind).unwrap_or(PersonStatus::Active);
            // A super admin's lock is a super admin's to lift (see `services::admin`).
            app.db
                .set_person_status_by(&person.id, status, admin.is_super(), now)
                .await
                .map_err(Problem::internal)?;
            if !status.is_active() {
                end_all_sessions(app, &person.id).await?;
            }
            detail = json!({ "status": status.as_str() });
        }
        "verify" => {
            let document = admin_persons::verification_document(document).map_err(super::ctx::problem)?;
            app.db
                .set_real_name(&person.id, 3, "counter:idcard", &admin.actor, now)
                .await
                .map_err(Problem::internal)?;
            detail = json!({ "real_name_level": 3, "document": document });
        }
        _ => end_all_sessions(app, &person.id).await?,
    }
    let detail = marked(detail, loud);
    ctx.audit(&format!("person.{action}"), &person.id, "", "success", detail)
        .await?;
    let person = app
        .db
        .person(id)
        .await
        .map_err(Problem::internal)?
        .unwrap_or(person);
    Ok(person_json(app, &person))
}
