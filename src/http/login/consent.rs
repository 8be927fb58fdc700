//! The consent page: what the app will receive, allow or deny; remembered per person and app.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::error::OAuthError;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::oidc::respond_error;
use crate::http::{cookies, page};
use crate::services::identity;
use crate::services::oidc::authorize::AuthRequest;

use super::Pending;

#[derive(Deserialize)]
pub struct Show {
    req: String,
}

pub async fn show(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<Show>) -> Response {
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let to_login = || Redirect::to(&format!("/login?req={}", urlencode(&q.req))).into_response();
        let Pending {
            bound,
            person,
            session,
        } = match super::pending(&app, lang, &jar, &q.req, now, to_login).await? {
            Ok(p) => p,
            Err(page) => return Ok(page),
        };
        let bound_sid = session.sid;
        let pending = bound.row;
        let req: AuthRequest = serde_json::from_str(&pending.params)?;
        let client = app.db.client(&pending.client_id).await?;
        let (jar, csrf) = cookies::csrf(&app, jar);
        let t = lang.texts();
        let mut items: Vec<String> = req
            .scopes
            .iter()
            .filter(|s| *s != "licences")
            .map(|s| page::scope_text(t, s).to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        // Each licence type by name: the person consents per type.
        if let Some(c) = &client {
            for ty in app.db.allowed_licence_types(&c.id).await? {
                if req.licence_types.iter().flatten().any(|code| *code == ty.code) {
                    items.push(format!("{}{}", t.scope_licences_item, ty.name));
                }
            }
        }
        let self_registered = match &client {
            Some(c) => app.db.client_registration(&c.id).await?.is_some(),
            None => false,
        };
        let acting_for = match (&client, req.acting_of(&person.id).filter(|a| !a.is_empty())) {
            (Some(c), Some(rep)) => identity::acting_options(&app.db, &person.id, c, now)
                .await?
                .into_iter()
                .find(|(r, _)| r.id == rep)
                .map(|(_, org)| format!("{}（{}）", org.name, org.credit_code)),
            _ => None,
        };
        let target_host = url::Url::parse(&req.target.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        let who = crate::http::pending::page_owner(&bound_sid);
        let html = page::render(page::ConsentPage {
            t,
            req: &q.req,
            csrf: &csrf,
            who: &who,
            client_name: client.as_ref().map_or("", |c| c.name.as_str()),
            person_name: &person.name,
            items,
            acting_for,
            self_registered: if self_registered {
                target_host.as_deref().or(Some(""))
            } else {
                None
            },
        });
        let html = page::allow_form_target(html, &req.target.redirect_uri);
        Ok((jar, html).into_response())
    }
    .await;
    result.unwrap_or_else(|e| crate::http::page::internal(e, "consent page"))
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
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
        return super::forbidden_csrf(lang);
    }
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let signed_out = || page::fail(lang, StatusCode::FORBIDDEN, Msg::SignInAgain);
        let Pending { bound, session, .. } =
            match super::pending(&app, lang, &jar, &f.req, now, signed_out).await? {
                Ok(p) => p,
                Err(page) => return Ok(page),
            };
        let pending = &bound.row;
        // Someone else signed in on this browser since the page was shown: they see it for themselves.
        if !crate::http::pending::same_owner(f.who.as_deref(), &session.sid) {
            return Ok(crate::http::pending::reshow("/consent", &f.req));
        }
        let mut req: AuthRequest = serde_json::from_str(&pending.params)?;
        if f.decision != "allow" {
            if !app
                .db
                .finish_auth_request(&bound.id_hash, &bound.browser_hash, now)
                .await?
            {
                return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::RequestAnswered));
            }
            let e = OAuthError::access_denied("the person declined");
            return Ok(respond_error(&app, &req.target, &e));
        }
        let mut scopes: Vec<String> = app
            .db
            .consent(&session.person_id, &pending.client_id)
            .await?
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
        // The organisation the person acts for is consented for by name (`org:<id>`).
        let client = app.db.client(&pending.client_id).await?;
        let acting_org = match (
            req.acting_of(&session.person_id).filter(|a| !a.is_empty()),
            &client,
        ) {
            (Some(rep), Some(c)) => identity::acting_options(&app.db, &session.person_id, c, now)
                .await?
                .into_iter()
                .find(|(r, _)| r.id == rep)
                .map(|(_, org)| org.id),
            _ => None,
        };
        for s in req.consent_tokens(acting_org.as_deref()) {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        app.db
            .save_consent(&session.person_id, &pending.client_id, &scopes.join(" "), now)
            .await?;
        crate::services::audit::record_quietly(
            &app.db,
            app.now(),
            crate::store::audit::NewEvent {
                actor: &format!("person:{}", session.person_id),
                action: "consent",
                subject: &session.person_id,
                client_id: &pending.client_id,
                outcome: "granted",
                detail: serde_json::json!({ "scopes": scopes }).to_string(),
                ..Default::default()
            },
        )
        .await;
        // Back to the request, which now goes on (acting-for choice, then the code).
        req.consented_by = Some(session.person_id.clone());
        app.db
            .update_auth_request(&bound.id_hash, &bound.browser_hash, &serde_json::to_string(&req)?)
            .await?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("req", &f.req)
            .finish();
        Ok(Redirect::to(&format!("/authorize/resume?{query}")).into_response())
    }
    .await;
    result.unwrap_or_else(|e| crate::http::page::internal(e, "consent"))
}
