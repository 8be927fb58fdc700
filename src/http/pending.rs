//! The sign-in path's answers as HTTP: where a step of `services::authn` sends the browser (a page of
//! ours with the sealed request, `/authorize/resume`, the app with a code or an error, an error page),
//! and the `who` token that ties a consent or act-as form to the session it was shown to.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;

use crate::app::App;
use crate::crypto;
use crate::error::OAuthError;
use crate::http::cookies;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::page;
use crate::services::authn::{Browser, Next, Stop};
use crate::services::oidc::authorize::{Refusal, ResponseMode, Target};

/// The browser as the flow sees it: its binding secret and session cookie.
pub fn browser<'a>(binding: &'a Option<String>, session: &'a Option<String>) -> Browser<'a> {
    Browser {
        binding: binding.as_deref(),
        session: session.as_deref(),
    }
}

/// The cookies of `jar` the flow reads: (binding secret, session cookie).
pub fn cookies_of(app: &App, jar: &CookieJar) -> (Option<String>, Option<String>) {
    (cookies::browser_value(app, jar), cookies::session_value(app, jar))
}

/// The OAuth error a refusal is rendered as.
pub fn oauth(r: &Refusal) -> OAuthError {
    OAuthError {
        code: r.code.as_str(),
        description: r.description.clone(),
    }
}

/// Renders where a step sends the browser.
pub fn render(app: &App, lang: Lang, jar: CookieJar, next: Next) -> Response {
    match next {
        Next::Page { page, req, binding } => {
            let jar = match binding {
                Some(b) => cookies::set_browser(app, jar, b),
                None => jar,
            };
            (jar, Redirect::to(&with_req(page.path(), &req))).into_response()
        }
        Next::Resume(req) => (jar, Redirect::to(&resume_path(&req))).into_response(),
        // The jar goes along: a sign-in that goes on at once sets its session cookie in this response.
        Next::Code { target, code } => (jar, respond(app, &target, vec![("code", code)])).into_response(),
        Next::Refused { target, refusal } => {
            (jar, respond_error(app, &target, &oauth(&refusal))).into_response()
        }
        Next::Stop(stop) => {
            let (status, msg) = stopped(stop);
            (jar, page::fail(lang, status, msg)).into_response()
        }
    }
}

fn stopped(stop: Stop) -> (StatusCode, Msg<'static>) {
    let bad = StatusCode::BAD_REQUEST;
    let forbidden = StatusCode::FORBIDDEN;
    match stop {
        Stop::RequestExpired => (bad, Msg::RequestExpired),
        Stop::RequestAnswered => (bad, Msg::RequestAnswered),
        Stop::UnknownClient => (bad, Msg::UnknownClient),
        Stop::SignInAgain => (bad, Msg::SignInAgain),
        Stop::SignedOut => (forbidden, Msg::SignInAgain),
        Stop::ClientIdRequired => (bad, Msg::ClientIdRequired),
        Stop::RequestUriUnknown => (bad, Msg::RequestUriUnknown),
        Stop::Untrusted(m) => (bad, Msg::Untrusted(m)),
        Stop::NoOrgAsked => (forbidden, Msg::NoOrgAsked),
        Stop::CannotActFor => (forbidden, Msg::CannotActFor),
    }
}

/// `path?req=…`
fn with_req(path: &str, req: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("req", req)
        .finish();
    format!("{path}?{query}")
}

/// `/authorize/resume?req=…`
pub fn resume_path(req: &str) -> String {
    with_req("/authorize/resume", req)
}

/// A token naming the session a consent or act-as page was shown to (a hash of its `sid`).
pub fn page_owner(sid: &str) -> String {
    crypto::token_hash(&format!("page-owner|{sid}"))
}

/// Whether an answer posted with `who` comes from the session the page was shown to. A form without
/// `who` (not one of our pages) is judged by the CSRF token and the binding alone.
pub fn same_owner(who: Option<&str>, sid: &str) -> bool {
    who.is_none_or(|w| crypto::ct_eq(w.as_bytes(), page_owner(sid).as_bytes()))
}

/// An error for the app, at its redirect URI.
fn respond_error(app: &App, target: &Target, e: &OAuthError) -> Response {
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
fn respond(app: &App, target: &Target, mut fields: Vec<(&'static str, String)>) -> Response {
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
