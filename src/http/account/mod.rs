//! The person's own page: profile, passkeys, signed-in sessions, connected apps, recent sign-ins.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::http::i18n::Lang;
use crate::http::{cookies, page};
use crate::identity::Phone;
use crate::services::{logout, passkey};
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

pub fn router() -> Router<App> {
    Router::new()
        .route("/account", get(show))
        .route("/account/passkeys/start", post(passkey_start))
        .route("/account/passkeys/finish", post(passkey_finish))
        .route("/account/passkeys/{id}/delete", post(passkey_delete))
        .route("/account/sessions/{sid}/end", post(end_session))
        .route("/account/logout-all", post(logout_all))
        .route("/account/apps/{client}/revoke", post(revoke_app))
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
    /// (signed in at, sid, is this one, methods)
    sessions: Vec<(String, String, bool, String)>,
    /// (name, client id, scopes)
    apps: Vec<(String, String, String)>,
    /// (at, method, address, outcome)
    events: Vec<(String, String, String, String)>,
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

async fn show(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let result: anyhow::Result<Response> = async {
        let Some((session, person)) = signed_in(&app, &jar).await? else {
            return Ok(Redirect::to("/login").into_response());
        };
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
            .map(|s| (time(s.auth_time), s.sid.clone(), s.sid == session.sid, s.amr))
            .collect();
        // The store gives (client id, name, scopes); the page wants the name first.
        let apps = app
            .db
            .consents_of(&person.id)
            .await?
            .into_iter()
            .map(|(id, name, scopes)| (name, id, scopes))
            .collect();
        let events = app
            .db
            .login_events(&person.id, 10)
            .await?
            .into_iter()
            .map(|e| (time(e.at), e.method, e.address, e.outcome))
            .collect();
        let (jar, csrf) = cookies::csrf(&app, jar);
        let html = page::render(AccountPage {
            t: lang.texts(),
            csrf: &csrf,
            notice: None,
            name: &person.name,
            id_masked,
            phone_masked,
            level: person.real_name_level,
            passkeys,
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
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
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
    match passkey::start_registration(&app, &person.id, &masked, &person.name, app.now()).await {
        Ok((ceremony, options)) => Json(json!({ "ceremony": ceremony, "options": options })).into_response(),
        Err(passkey::PasskeyError::Disabled) => json_error(StatusCode::NOT_FOUND, "disabled"),
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

async fn passkey_finish(
    State(app): State<App>,
    jar: CookieJar,
    headers: HeaderMap,
    Json(body): Json<FinishBody>,
) -> Response {
    if !cookies::csrf_ok(
        &app,
        &jar,
        headers.get("x-csrf-token").and_then(|v| v.to_str().ok()),
    ) {
        return json_error(StatusCode::FORBIDDEN, "csrf");
    }
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return json_error(StatusCode::UNAUTHORIZED, "login_required");
    };
    match passkey::finish_registration(
        &app,
        &person.id,
        &body.ceremony,
        &body.name,
        &body.credential,
        app.now(),
    )
    .await
    {
        Ok(id) => Json(json!({ "id": id })).into_response(),
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
        return page::error_in(lang, StatusCode::FORBIDDEN, "invalid form token");
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
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let db = app.db.clone();
    action(&app, lang, jar, form, |_, person| async move {
        db.delete_passkey(&id, &person.id).await?;
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
            logout::end_session(&a, &sid, now).await?;
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
        let now = a.now();
        for s in a.db.sessions_of(&person.id, now).await? {
            logout::end_session(&a, &s.sid, now).await?;
        }
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
        a.db.revoke_app(&person.id, &client, a.now()).await?;
        Ok(true)
    })
    .await
}
