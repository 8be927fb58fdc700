//! "Act for": a person who represents organisations chooses, for this app, to act as themself or for
//! one of them (only representations that are current and cover the app's matters are offered).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::{cookies, page};
use crate::services::identity;
use crate::services::oidc::authorize::AuthRequest;

use super::Pending;

/// Nobody is signed in any more (the session ended while the page was open).
fn sign_in_again(lang: Lang) -> Response {
    page::fail(lang, StatusCode::FORBIDDEN, Msg::SignInAgain)
}

#[derive(Deserialize)]
pub struct Show {
    req: String,
}

pub async fn show(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<Show>) -> Response {
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let Pending {
            bound,
            session,
            person,
        } = match super::pending(&app, lang, &jar, &q.req, now, || sign_in_again(lang)).await? {
            Ok(p) => p,
            Err(page) => return Ok(page),
        };
        let pending = bound.row;
        let Some(client) = app.db.client(&pending.client_id).await? else {
            return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::UnknownClient));
        };
        let options = identity::acting_options(&app.db, &session.person_id, &client, now).await?;
        let req: AuthRequest = serde_json::from_str(&pending.params)?;
        // An app's login_hint=org:<code> only preselects; the person chooses.
        let hinted = req.hinted_org(&options);
        let (jar, csrf) = cookies::csrf(&app, jar);
        let choices: Vec<page::ActChoice> = options
            .iter()
            .map(|(rep, org)| page::ActChoice {
                value: rep.id.clone(),
                org_name: org.name.clone(),
                credit_code: org.credit_code.clone(),
                role: page::role_text(lang.texts(), rep.role.as_str()),
                selected: hinted.as_deref() == Some(rep.id.as_str()),
            })
            .collect();
        let who = crate::http::pending::page_owner(&session.sid);
        let html = page::render(page::ActAsPage {
            t: lang.texts(),
            req: &q.req,
            csrf: &csrf,
            who: &who,
            person_name: &person.name,
            client_name: &client.name,
            self_selected: hinted.is_none(),
            choices,
        });
        let html = page::allow_form_target(html, &req.target.redirect_uri);
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
        return super::forbidden_csrf(lang);
    }
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let Pending { bound, session, .. } =
            match super::pending(&app, lang, &jar, &f.req, now, || sign_in_again(lang)).await? {
                Ok(p) => p,
                Err(page) => return Ok(page),
            };
        let pending = &bound.row;
        if !crate::http::pending::same_owner(f.who.as_deref(), &session.sid) {
            return Ok(crate::http::pending::reshow("/act-as", &f.req));
        }
        let Some(client) = app.db.client(&pending.client_id).await? else {
            return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::UnknownClient));
        };
        let mut req: AuthRequest = serde_json::from_str(&pending.params)?;
        // Acting for an organisation is for requests that asked for `org` (the app may learn of it).
        if !req.scopes.iter().any(|s| s == "org") {
            return Ok(page::fail(lang, StatusCode::FORBIDDEN, Msg::NoOrgAsked));
        }
        if !f.acting.is_empty() {
            let allowed = identity::acting_options(&app.db, &session.person_id, &client, now)
                .await?
                .iter()
                .any(|(rep, _)| rep.id == f.acting);
            if !allowed {
                return Ok(page::fail(lang, StatusCode::FORBIDDEN, Msg::CannotActFor));
            }
        }
        req.acting = Some(f.acting.clone());
        req.acting_by = Some(session.person_id.clone());
        // A consent answered earlier was for another choice: it is asked again for this one.
        req.consented_by = None;
        app.db
            .update_auth_request(&bound.id_hash, &bound.browser_hash, &serde_json::to_string(&req)?)
            .await?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("req", &f.req)
            .finish();
        Ok(Redirect::to(&format!("/authorize/resume?{query}")).into_response())
    }
    .await;
    result.unwrap_or_else(|e| crate::http::page::internal(e, "act-as"))
}
