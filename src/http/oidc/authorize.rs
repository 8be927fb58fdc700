//! The authorization endpoint (OIDC Core §3.1.2) and the resumption of a pending request after login
//! or consent: parse, call the step of `services::authn`, render. Responses carry `iss` (RFC 9207);
//! errors go to the client only once its redirect URI is trusted, otherwise to an error page.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::crypto;
use crate::error::OAuthError;
use crate::http::forms::ProtocolParams;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::page;
use crate::http::pending;
use crate::services::authn::steps;
use crate::services::oidc::authorize::{ResponseMode, Target};

pub async fn authorize(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ProtocolParams(params): ProtocolParams,
) -> Response {
    let (binding, session) = pending::cookies_of(&app, &jar);
    let browser = pending::browser(&binding, &session);
    match steps::authorize(&app.authn(), &params, browser, app.now()).await {
        Ok(next) => pending::render(&app, lang, jar, next),
        Err(e) => internal(e),
    }
}

fn internal(e: anyhow::Error) -> Response {
    crate::http::page::internal(e, "authorization failed")
}

#[derive(Deserialize)]
pub struct Resume {
    req: String,
}

/// After login or consent: picks up the pending request where it stopped (`steps::resume`).
pub async fn resume(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<Resume>) -> Response {
    let (binding, session) = pending::cookies_of(&app, &jar);
    let browser = pending::browser(&binding, &session);
    match steps::resume(&app.authn(), &q.req, browser, app.now()).await {
        Ok(next) => pending::render(&app, lang, jar, next),
        Err(e) => internal(e),
    }
}

pub fn respond_error(app: &App, target: &Target, e: &OAuthError) -> Response {
    respond(
        app,
        target,
        vec![
            ("error", e.code.to_owned()),
            ("error_description", e.description.clone()),
        ],
    )
}

/// Sends a response to the client's redirect URI, with `state` and `iss`, by the requested mode.
pub fn respond(app: &App, target: &Target, mut fields: Vec<(&'static str, String)>) -> Response {
    if let Some(state) = &target.state {
        fields.push(("state", state.clone()));
    }
    fields.push(("iss", app.config.iss().to_owned()));
    match target.mode {
        ResponseMode::Query => {
            let Ok(mut url) = url::Url::parse(&target.redirect_uri) else {
                return page::fail(Lang::default(), StatusCode::BAD_REQUEST, Msg::InvalidRedirectUri);
            };
            url.query_pairs_mut()
                .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())));
            (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
        }
        ResponseMode::FormPost => {
            let nonce = crypto::random_token();
            let origin = url::Url::parse(&target.redirect_uri)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            let csp = format!(
                "default-src 'none'; script-src 'nonce-{nonce}'; form-action {origin}; frame-ancestors 'none'"
            );
            let fields: Vec<(&str, String)> = fields.into_iter().collect();
            let mut res = page::render(page::FormPostPage {
                t: crate::http::i18n::Lang::default().texts(),
                action: &target.redirect_uri,
                fields: &fields,
                nonce: &nonce,
            });
            if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
                res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
            }
            res
        }
    }
}
