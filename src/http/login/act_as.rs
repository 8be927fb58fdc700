//! "Act for": a person who represents organisations chooses, for this app, to act as themself or for
//! one of them (only representations that are current and cover the app's matters are offered). The
//! steps are `services::authn::steps::{act_as_page, answer_acting}`.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::http::i18n::Lang;
use crate::http::{cookies, page, pending};
use crate::services::authn::steps;

#[derive(Deserialize)]
pub struct Show {
    req: String,
}

pub async fn show(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<Show>) -> Response {
    let result: anyhow::Result<Response> = async {
        let (binding, session) = pending::cookies_of(&app, &jar);
        let browser = pending::browser(&binding, &session);
        let view = match steps::act_as_page(&app.authn(), &q.req, browser, app.now()).await? {
            Ok(v) => v,
            Err(next) => return Ok(pending::render(&app, lang, jar, next)),
        };
        let (jar, csrf) = cookies::csrf(&app, jar);
        let choices: Vec<page::ActChoice> = view
            .options
            .iter()
            .map(|(rep, org)| page::ActChoice {
                value: rep.id.clone(),
                org_name: org.name.clone(),
                credit_code: org.credit_code.clone(),
                role: page::role_text(lang.texts(), rep.role.as_str()),
                selected: view.hinted.as_deref() == Some(rep.id.as_str()),
            })
            .collect();
        let who = pending::page_owner(&view.sid);
        let html = page::render(page::ActAsPage {
            t: lang.texts(),
            req: &q.req,
            csrf: &csrf,
            who: &who,
            person_name: &view.person.name,
            client_name: &view.client.name,
            // An app's login_hint=org:<code> only preselects; the person chooses.
            self_selected: view.hinted.is_none(),
            choices,
        });
        let html = page::allow_form_target(html, &view.req.target.redirect_uri);
        Ok((jar, html).into_response())
    }
    .await;
    result.unwrap_or_else(|e| crate::http::page::internal(e, "act-as page"))
}

#[derive(Deserialize)]
pub struct Submit {
    csrf: Option<String>,
    req: String,
    who: Option<String>,
    /// Empty for "myself", else a representation id.
    acting: String,
}

pub async fn submit(State(app): State<App>, lang: Lang, jar: CookieJar, Form(f): Form<Submit>) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return crate::http::page::forbidden_csrf(lang);
    }
    let (binding, session) = pending::cookies_of(&app, &jar);
    let browser = pending::browser(&binding, &session);
    let same_owner = |sid: &str| pending::same_owner(f.who.as_deref(), sid);
    match steps::answer_acting(&app.authn(), &f.req, browser, same_owner, &f.acting, app.now()).await {
        Ok(next) => pending::render(&app, lang, jar, next),
        Err(e) => crate::http::page::internal(e, "act-as"),
    }
}
