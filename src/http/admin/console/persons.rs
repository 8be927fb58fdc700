//! Persons in the console: look-up by ID number (in the form body, never shown back), counter
//! verification, unlock, lock, ending sessions, a temporary password (passkeys removed unless the
//! clerk ticks "keep"), a phone change — through the same operations, the same "who may act on whom"
//! rule and the same audit events as the admin API.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::auth::admin;
use super::ctx;
use super::labels::{labels, status_text};
use super::{PersonView, Posted, View, problem_page, render};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::page;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/persons", get(persons).post(search))
        .route("/admin/persons/{id}/{action}", post(person_action))
}

#[derive(Deserialize, Default)]
struct PersonQuery {
    /// Internal person id (never the ID number: URLs end up in logs).
    person: Option<String>,
    notice: Option<String>,
}

fn person_view(lang: Lang, p: &serde_json::Value) -> PersonView {
    PersonView {
        id: p["id"].as_str().unwrap_or("").to_owned(),
        name: p["name"].as_str().unwrap_or("").to_owned(),
        id_masked: p["id_number_masked"].as_str().unwrap_or("").to_owned(),
        level: p["real_name_level"].as_i64().unwrap_or(1),
        status: status_text(lang, p["status"].as_str().unwrap_or("")),
        version: p["version"].as_i64().unwrap_or(0),
    }
}

async fn persons(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    uri: axum::http::Uri,
    Query(q): Query<PersonQuery>,
) -> Response {
    let admin = match admin(&app, &jar, lang, &uri.to_string()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let l = labels(lang);
    let mut v = View {
        title: l.persons,
        section: "persons",
        ..View::default()
    };
    if q.notice.is_some() {
        v.notice = Some(l.done);
    }
    if !admin.can_look_up_persons() {
        return page::fail(
            lang,
            StatusCode::FORBIDDEN,
            crate::http::messages::Msg::NotAllowed("person.search"),
        );
    }
    if let Some(id) = q.person.as_deref()
        && let Ok(Some(p)) = app.db.person(id).await
    {
        v.persons = vec![person_view(lang, &ctx::person_json(&app, &p))];
    }
    render(&app, jar, lang, &admin, v, StatusCode::OK)
}

#[derive(Deserialize)]
struct SearchForm {
    csrf: Option<String>,
    id_number: String,
}

/// The ID number travels in the form body and is not shown back.
async fn search(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(f): Form<SearchForm>,
) -> Response {
    let posted = match Posted::check(&app, &jar, lang, f.csrf.as_deref(), address).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (admin, ctx) = (&posted.admin, posted.ctx(&app));
    let l = labels(lang);
    match crate::http::admin::persons::find_person(&ctx, Some(f.id_number.trim()), None).await {
        Ok(list) => match list.first().and_then(|p| p["id"].as_str()) {
            Some(id) => {
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("person", id)
                    .finish();
                Redirect::to(&format!("/admin/persons?{query}")).into_response()
            }
            None => {
                let v = View {
                    title: l.persons,
                    section: "persons",
                    error: Some(l.not_found),
                    ..View::default()
                };
                render(&app, jar, lang, admin, v, StatusCode::NOT_FOUND)
            }
        },
        Err(p) => {
            let shown = super::problem_text::detail(lang, p.status, &p.detail);
            let v = View {
                title: l.persons,
                section: "persons",
                error: Some(&shown),
                ..View::default()
            };
            render(&app, jar, lang, admin, v, p.status)
        }
    }
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    /// `reset-password`: the "keep passkeys" box (absent: unticked).
    keep_passkeys: Option<String>,
    /// `phone`: the new number and the version the page showed.
    phone: Option<String>,
    version: Option<i64>,
}

async fn person_action(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let posted = match Posted::check(&app, &jar, lang, f.csrf.as_deref(), address).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = posted.ctx(&app);
    let done = match action.as_str() {
        "reset-password" => {
            let keep = f.keep_passkeys.is_some();
            return match crate::http::admin::persons::reset(&ctx, &id, keep).await {
                Ok(reset) => {
                    show_temporary(&app, jar, lang, &posted.admin, &id, &reset.temporary_password).await
                }
                Err(p) => problem_page(lang, p),
            };
        }
        "phone" => {
            let Some(phone) = f.phone.filter(|p| !p.trim().is_empty()) else {
                return problem_page(lang, super::Problem::field("phone", "a new phone number"));
            };
            crate::http::admin::persons::change_phone(&ctx, &id, Some(phone), f.version.unwrap_or(0)).await
        }
        _ => crate::http::admin::persons::act_on_person(&ctx, &id, &action, None)
            .await
            .map(|_| ()),
    };
    match done {
        Ok(_) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("person", &id)
                .append_pair("notice", "done")
                .finish();
            Redirect::to(&format!("/admin/persons?{query}")).into_response()
        }
        Err(p) => problem_page(lang, p),
    }
}

/// The person's page with the temporary password, shown this once (the page is `no-store`).
async fn show_temporary(
    app: &App,
    jar: CookieJar,
    lang: Lang,
    admin: &crate::services::admin::Admin,
    id: &str,
    temporary: &str,
) -> Response {
    let l = labels(lang);
    let mut v = View {
        title: l.persons,
        section: "persons",
        temporary_password: Some(temporary),
        ..View::default()
    };
    if let Ok(Some(p)) = app.db.person(id).await {
        v.persons = vec![person_view(lang, &ctx::person_json(app, &p))];
    }
    render(app, jar, lang, admin, v, StatusCode::OK)
}
