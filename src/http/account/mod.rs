//! The person's own page: profile, passkeys, signed-in sessions, connected apps, recent sign-ins.

mod upstreams;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::{cookies, page};
use crate::identity::Phone;
use crate::services::notify::{self, Change};
use crate::services::{audit, passkey};
use crate::store::audit::NewEvent;
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

pub mod legal_entry;
mod organisations;
mod proofing_texts;
mod verify;

pub fn router() -> Router<App> {
    Router::new()
        .merge(verify::router())
        .merge(organisations::router())
        .merge(legal_entry::router())
        .route("/account", get(show))
        .route("/account/passkeys/start", post(passkey_start))
        .route("/account/passkeys/finish", post(passkey_finish))
        .route("/account/passkeys/{id}/delete", post(passkey_delete))
        .route("/account/sessions/{sid}/end", post(end_session))
        .route("/account/logout-all", post(logout_all))
        .route("/account/apps/{client}/revoke", post(revoke_app))
        .route("/account/upstreams/{id}/unlink", post(upstreams::unlink))
}

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    t: &'static crate::http::i18n::Texts,
    csrf: &'a str,
    notice: Option<&'a str>,
    name: &'a str,
    id_masked: String,
    phone_masked: String,
    level: i64,
    /// (name, id)
    passkeys: Vec<(String, String)>,
    /// This session may add a passkey now; otherwise the page offers the step-up first.
    may_add: bool,
    step_up: &'static str,
    /// (signed in at, sid, is this one, methods)
    sessions: Vec<(String, String, bool, String)>,
    /// (name, client id, scopes)
    apps: Vec<(String, String, String)>,
    /// (at, method, address, outcome)
    events: Vec<(String, String, String, String)>,
    /// Upstream accounts linked to this person: (upstream id, display name, linked at).
    linked: Vec<(String, String, String)>,
}

fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| {
            (d + chrono::Duration::hours(8))
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

async fn signed_in(app: &App, jar: &CookieJar) -> anyhow::Result<Option<(SessionRow, PersonRow)>> {
    cookies::session(app, jar, app.now()).await
}

fn internal(e: anyhow::Error) -> Response {
    crate::http::page::internal(e, "account page")
}

/// Where a session that may not add credentials yet goes first: the login page asking for one more
/// factor for this session (an SMS code to the registered phone, or an existing passkey), which comes
/// back to the account page.
pub const STEP_UP: &str = "/login?step_up=account";

/// Records a change to the person's own credentials and tells them by SMS.
async fn credential_event(
    app: &App,
    person: &PersonRow,
    action: &str,
    address: &str,
    detail: serde_json::Value,
) {
    audit::record_quietly(
        &app.db,
        app.now(),
        NewEvent {
            actor: &format!("person:{}", person.id),
            action,
            subject: &person.id,
            address,
            outcome: "success",
            detail: detail.to_string(),
            ..Default::default()
        },
    )
    .await;
    let change = match action {
        "passkey.add" => Change::PasskeyAdded,
        _ => Change::PasskeyRemoved,
    };
    notify::credential_changed(&app.sms_outbox(), person.phone.as_deref(), change, app.now()).await;
}

async fn show(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let result: anyhow::Result<Response> = async {
        let Some((session, person)) = signed_in(&app, &jar).await? else {
            return Ok(Redirect::to("/login").into_response());
        };
        if let (jar, true) = legal_entry::take(&app, jar.clone()) {
            return Ok((jar, Redirect::to(legal_entry::LANDING)).into_response());
        }
        let now = app.now();
        let id_masked = app
            .secrets
            .decrypt(&person.id_number_enc, person.id.as_bytes())
            .ok()
            .and_then(|n| crate::identity::ResidentId::parse(&n).ok())
            .map(|id| id.masked())
            .unwrap_or_default();
        let phone_masked = person
            .phone
            .as_deref()
            .and_then(|p| Phone::parse(p).ok())
            .map(|p| p.masked())
            .unwrap_or_default();
        let passkeys = app
            .db
            .passkeys_of(&person.id)
            .await?
            .into_iter()
            .map(|p| (p.name, p.id))
            .collect();
        let sessions = app
            .db
            .sessions_of(&person.id, now)
            .await?
            .into_iter()
            .map(|s| {
                (
                    time(s.auth_time),
                    s.sid.clone(),
                    s.sid == session.sid,
                    s.amr.to_string(),
                )
            })
            .collect();
        // The store gives (client id, name, scopes); the page wants the name first.
        let apps = app
            .db
            .consents_of(&person.id)
            .await?
            .into_iter()
            .map(|(id, name, scopes)| (name, id, scopes.to_string()))
            .collect();
        let events = app
            .db
            .login_events(&person.id, 10)
            .await?
            .into_iter()
            .map(|e| (time(e.at), e.method, e.address, e.outcome))
            .collect();
        let linked = upstreams::linked(&app, &person.id).await?;
        let (jar, csrf) = cookies::csrf(&app, jar);
        let html = page::render(AccountPage {
            linked,
            t: lang.texts(),
            csrf: &csrf,
            notice: None,
            name: &person.name,
            id_masked,
            phone_masked,
            level: person.real_name_level,
            passkeys,
            may_add: passkey::may_add_credentials(&session, app.config.credential_step_up_max_age, now),
            step_up: STEP_UP,
            sessions,
            apps,
            events,
        });
        Ok((jar, html).into_response())
    }
    .await;
    result.unwrap_or_else(internal)
}

fn json_error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "error": code }))).into_response()
}

async fn passkey_start(
    State(app): State<App>,
    jar: CookieJar,
    headers: HeaderMap,
    // The label comes with the finished registration; the start request carries nothing we need.
    Json(_): Json<serde_json::Value>,
) -> Response {
    if !cookies::csrf_ok(
        &app,
        &jar,
        headers.get("x-csrf-token").and_then(|v| v.to_str().ok()),
    ) {
        return json_error(StatusCode::FORBIDDEN, "csrf");
    }
    let Ok(Some((session, person))) = signed_in(&app, &jar).await else {
        return json_error(StatusCode::UNAUTHORIZED, "login_required");
    };
    // The authenticator shows `user.name`: the masked ID number, never the full one or an internal id.
    let masked = app
        .secrets
        .decrypt(&person.id_number_enc, person.id.as_bytes())
        .ok()
        .and_then(|n| crate::identity::ResidentId::parse(&n).ok())
        .map(|id| id.masked())
        .unwrap_or_else(|| person.name.clone());
    match passkey::start_registration(&app.passkeys(), &session, &masked, &person.name, app.now()).await {
        Ok((ceremony, options)) => Json(json!({ "ceremony": ceremony, "options": options })).into_response(),
        Err(passkey::PasskeyError::Disabled) => json_error(StatusCode::NOT_FOUND, "disabled"),
        Err(passkey::PasskeyError::StepUp) => step_up_required(),
        Err(passkey::PasskeyError::Internal(e)) => {
            crate::http::page::json_internal(&e, "passkey registration start")
        }
        Err(e) => crate::http::page::json_internal(&anyhow::anyhow!("{e}"), "passkey registration start"),
    }
}

#[derive(Deserialize)]
struct FinishBody {
    ceremony: String,
    #[serde(default)]
    name: String,
    credential: webauthn_rs::prelude::RegisterPublicKeyCredential,
}

/// 403 with where to go: the page's script sends the browser through the step-up.
fn step_up_required() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({ "error": "step_up_required", "step_up": STEP_UP })),
    )
        .into_response()
}

async fn passkey_finish(
    State(app): State<App>,
    jar: CookieJar,
    headers: HeaderMap,
    ClientAddr(address): ClientAddr,
    Json(body): Json<FinishBody>,
) -> Response {
    if !cookies::csrf_ok(
        &app,
        &jar,
        headers.get("x-csrf-token").and_then(|v| v.to_str().ok()),
    ) {
        return json_error(StatusCode::FORBIDDEN, "csrf");
    }
    let Ok(Some((session, person))) = signed_in(&app, &jar).await else {
        return json_error(StatusCode::UNAUTHORIZED, "login_required");
    };
    match passkey::finish_registration(
        &app.passkeys(),
        &session,
        &body.ceremony,
        &body.name,
        &body.credential,
        app.now(),
    )
    .await
    {
        Ok(id) => {
            credential_event(&app, &person, "passkey.add", &address, json!({ "passkey": id })).await;
            Json(json!({ "id": id })).into_response()
        }
        Err(passkey::PasskeyError::StepUp) => step_up_required(),
        Err(passkey::PasskeyError::Internal(e)) => {
            crate::http::page::json_internal(&e, "passkey registration finish")
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// Runs a form action for the signed-in person, then goes back to the account page.
async fn action<F, Fut>(app: &App, lang: Lang, jar: CookieJar, form: CsrfForm, f: F) -> Response
where
    F: FnOnce(SessionRow, PersonRow) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    if !cookies::csrf_ok(app, &jar, form.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, crate::http::messages::Msg::FormToken);
    }
    let result: anyhow::Result<Response> = async {
        let Some((session, person)) = signed_in(app, &jar).await? else {
            return Ok(Redirect::to("/login").into_response());
        };
        let still_signed_in = f(session, person).await?;
        if still_signed_in {
            Ok(Redirect::to("/account").into_response())
        } else {
            Ok((cookies::clear_session(app, jar), page::logged_out(lang)).into_response())
        }
    }
    .await;
    result.unwrap_or_else(internal)
}

async fn passkey_delete(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let a = app.clone();
    action(&app, lang, jar, form, |_, person| async move {
        if a.db.delete_passkey(&id, &person.id).await? {
            credential_event(&a, &person, "passkey.delete", &address, json!({ "passkey": id })).await;
        }
        Ok(true)
    })
    .await
}

async fn end_session(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    Path(sid): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let a = app.clone();
    action(&app, lang, jar, form, |session, person| async move {
        let now = a.now();
        // Only the person's own sessions can be ended from here.
        if a.db
            .session_by_sid(&sid)
            .await?
            .is_some_and(|s| s.person_id == person.id)
        {
            a.logout().end_session(&sid, now).await?;
        }
        Ok(sid != session.sid)
    })
    .await
}

async fn logout_all(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    let a = app.clone();
    action(&app, lang, jar, form, |_, person| async move {
        // Sign out everywhere: offline grants too.
        a.logout().end_everything(&person.id, a.now()).await?;
        Ok(false)
    })
    .await
}

async fn revoke_app(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    Path(client): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let a = app.clone();
    action(&app, lang, jar, form, |_, person| async move {
        crate::services::connected_apps::revoke(&a.db, &a, &person.id, &client, a.now()).await?;
        Ok(true)
    })
    .await
}
