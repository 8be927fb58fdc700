//! The sign-in path's answers as HTTP: where a step of `services::authn` sends the browser (a page of
//! ours with the sealed request, `/authorize/resume`, the app with a code or an error, an error page),
//! and the `who` token that ties a consent or act-as form to the session it was shown to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;

use crate::app::App;
use crate::crypto;
use crate::error::OAuthError;
use crate::http::cookies;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::oidc::{respond, respond_error};
use crate::http::page;
use crate::services::authn::{Browser, Next, Stop};
use crate::services::oidc::authorize::Refusal;

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
        Next::Code { target, code } => respond(app, &target, vec![("code", code)]),
        Next::Refused { target, refusal } => respond_error(app, &target, &oauth(&refusal)),
        Next::Stop(stop) => {
            let (status, msg) = stopped(stop);
            page::fail(lang, status, msg)
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
