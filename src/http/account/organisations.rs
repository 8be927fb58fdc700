//! `/account/organisations`: a person at level 2 or above binds an enterprise they legally represent
//! (through the legal-person registry), appoints agents, and accepts or ends appointments.

use crate::store::proofing::{AppointmentStatus, BindingStatus};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::proofing_texts::{ProofingTexts, message, texts};
use super::verify::{CsrfForm, MessageQuery, outcome, signed_in};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::{Lang, Texts};
use crate::http::messages::Msg;
use crate::http::{cookies, page};
use crate::services::proofing::orgs::{self, NewAppointment};

const HERE: &str = "/account/organisations";

pub fn router() -> Router<App> {
    Router::new()
        .route(HERE, get(show))
        .route("/account/organisations/bind", post(bind))
        .route("/account/organisations/appoint", post(appoint))
        .route("/account/organisations/appointments/{id}/accept", post(accept))
        .route("/account/organisations/appointments/{id}/end", post(end))
}

#[derive(askama::Template)]
#[template(path = "organisations.html")]
struct OrganisationsPage<'a> {
    t: &'static Texts,
    p: &'static ProofingTexts,
    csrf: &'a str,
    message: Option<(&'static str, bool)>,
    level: i64,
    /// Arrived through the legal-person entry: the page opens with the choice.
    legal_entry: bool,
    /// Inside an app's request: its reference (kept by the bind form) and where it resumes.
    req: Option<String>,
    resume: Option<String>,
    /// (name, credit code, role text)
    represents: Vec<(String, String, &'static str)>,
    /// (name, credit code, status)
    bindings: Vec<(String, String, String)>,
    /// (org id, name, may appoint managers too)
    may_appoint: Vec<(String, String, bool)>,
    /// Some organisation offered lets this person appoint managers (the legal representative).
    may_appoint_managers: bool,
    /// (id, organisation, other person: the appointer's name, or what this person typed, masked;
    /// made by me, status text, may be accepted)
    appointments: Vec<(String, String, String, bool, &'static str, bool)>,
}

async fn show(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<MessageQuery>) -> Response {
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    let now = app.now();
    let req = q.req.clone().filter(|r| super::legal_entry::valid_req(r));
    let overview = match orgs::overview(&app.proofing(), &person, now).await {
        Ok(o) => o,
        Err(e) => return page::internal(anyhow::anyhow!("{e}"), "organisations page"),
    };
    let (jar, csrf) = cookies::csrf(&app, jar);
    let p = texts(lang);
    let html = page::render(OrganisationsPage {
        t: lang.texts(),
        p,
        csrf: &csrf,
        message: q.m.as_deref().and_then(|m| message(lang, m)),
        level: person.real_name_level,
        legal_entry: q.entry.as_deref() == Some("legal"),
        resume: req.as_deref().map(crate::http::pending::resume_path),
        req,
        represents: overview
            .represents
            .into_iter()
            .map(|(name, code, role)| (name, code, crate::http::page::role_text(lang.texts(), &role)))
            .collect(),
        bindings: overview
            .bindings
            .into_iter()
            .map(|(b, o)| {
                let (name, code) = o.map(|o| (o.name, o.credit_code)).unwrap_or_default();
                let status = match (b.status, b.suspended_by.as_deref()) {
                    (BindingStatus::Active, _) => p.status_active,
                    (_, Some("registry") | Some("migration")) => p.status_suspended,
                    _ => p.status_suspended_admin,
                };
                (name, code, status.to_owned())
            })
            .collect(),
        may_appoint_managers: overview.may_appoint.iter().any(|o| o.2),
        may_appoint: overview.may_appoint,
        appointments: overview
            .appointments
            .into_iter()
            .map(|(a, org, other, mine)| {
                let expired = a.expired(now);
                let status = match (a.status, expired) {
                    (AppointmentStatus::Accepted, _) => p.accepted,
                    (_, true) => p.expired,
                    _ => p.pending,
                };
                let acceptable = !mine && a.status == AppointmentStatus::Pending && !expired;
                (a.id, org, other, mine, status, acceptable)
            })
            .collect(),
    });
    (jar, html).into_response()
}

#[derive(Deserialize)]
struct BindForm {
    csrf: Option<String>,
    #[serde(default)]
    credit_code: String,
    /// The app's request this binding is for: on success the request goes on.
    req: Option<String>,
}

async fn bind(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(form): Form<BindForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, form.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken);
    }
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    let result = orgs::bind(&app.proofing(), &person, &form.credit_code, &address, app.now()).await;
    match form.req.filter(|r| super::legal_entry::valid_req(r)) {
        Some(req) if result.is_ok() => Redirect::to(&crate::http::pending::resume_path(&req)).into_response(),
        Some(req) => {
            // Back to the page for this request, with the message.
            let code = match result {
                Err(crate::services::proofing::ProofingError::Internal(e)) => {
                    tracing::error!(error = format!("{e:#}"), "proofing step failed");
                    "internal"
                }
                Err(e) => super::proofing_texts::code_of(&e),
                Ok(_) => "bound",
            };
            let to = format!(
                "{}&{}",
                super::legal_entry::bind_path(&req),
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("m", code)
                    .finish()
            );
            Redirect::to(&to).into_response()
        }
        None => outcome(HERE, result.map(|_| "bound")),
    }
}

#[derive(Deserialize)]
struct AppointForm {
    csrf: Option<String>,
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    appointee: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    matters: String,
    #[serde(default)]
    valid_days: String,
}

async fn appoint(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(form): Form<AppointForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, form.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken);
    }
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    let days = form.valid_days.trim();
    let valid_days = match days {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return outcome(
                    HERE,
                    Err(crate::services::proofing::ProofingError::Invalid("valid_days")),
                );
            }
        },
    };
    let new = NewAppointment {
        org_id: &form.org_id,
        appointee: &form.appointee,
        role: &form.role,
        matters: &form.matters,
        valid_days,
    };
    let result = orgs::appoint(&app.proofing(), &person, new, &address, app.now()).await;
    outcome(HERE, result.map(|_| "appointed"))
}

async fn accept(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, form.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken);
    }
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    let result = orgs::accept(&app.proofing(), &person, &id, &address, app.now()).await;
    outcome(HERE, result.map(|_| "accepted"))
}

async fn end(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, form.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken);
    }
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    let result = orgs::end(&app.proofing(), &person, &id, &address, app.now()).await;
    outcome(HERE, result.map(|_| "ended"))
}
