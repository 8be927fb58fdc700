//! The consent page: what the app will receive, allow or deny; remembered per person and app. The
//! steps are `services::authn::steps::{consent_page, answer_consent}`.

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
        let view = match steps::consent_page(&app.authn(), &q.req, browser, app.now()).await? {
            Ok(v) => v,
            Err(next) => return Ok(pending::render(&app, lang, jar, next)),
        };
        let (jar, csrf) = cookies::csrf(&app, jar);
        let t = lang.texts();
        let mut items: Vec<String> = view
            .req
            .scopes
            .iter()
            .filter(|s| *s != "licences")
            .map(|s| page::scope_text(t, s).to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        // Each licence type by name: the person consents per type.
        for name in &view.licence_names {
            items.push(format!("{}{}", t.scope_licences_item, name));
        }
        let acting_for = view
            .acting_for
            .as_ref()
            .map(|(name, code)| format!("{name}（{code}）"));
        let target_host = url::Url::parse(&view.req.target.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        let who = pending::page_owner(&view.sid);
        let html = page::render(page::ConsentPage {
            t,
            req: &q.req,
            csrf: &csrf,
            who: &who,
            client_name: view.client.as_ref().map_or("", |c| c.name.as_str()),
            person_name: &view.person.name,
            items,
            acting_for,
            self_registered: if view.self_registered {
                target_host.as_deref().or(Some(""))
            } else {
                None
            },
        });
        let html = page::allow_form_target(html, &view.req.target.redirect_uri);
        Ok((jar, html).into_response())
    }
    .await;
    result.unwrap_or_else(|e| crate::http::page::internal(e, "consent page"))
}

#[derive(Deserialize)]
pub struct Submit {
    csrf: Option<String>,
    req: String,
    who: Option<String>,
    decision: String,
}

pub async fn submit(State(app): State<App>, lang: Lang, jar: CookieJar, Form(f): Form<Submit>) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return crate::http::page::forbidden_csrf(lang);
    }
    let (binding, session) = pending::cookies_of(&app, &jar);
    let browser = pending::browser(&binding, &session);
    let same_owner = |sid: &str| pending::same_owner(f.who.as_deref(), sid);
    let allow = f.decision == "allow";
    match steps::answer_consent(&app.authn(), &f.req, browser, same_owner, allow, app.now()).await {
        Ok(next) => pending::render(&app, lang, jar, next),
        Err(e) => crate::http::page::internal(e, "consent"),
    }
}
