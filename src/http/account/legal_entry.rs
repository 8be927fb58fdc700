//! The "法人登录" (legal person) entry of the login page: the same sign-in, remembered for this browser
//! in a short-lived cookie, after which a person signing in at yunid itself goes straight to their
//! enterprises (to choose one, or to bind one when there is none). In an app's authorization request
//! the app's `org` scope already leads to the act-as choice; the entry keeps the request (`req`), and a
//! person with no enterprise to act for is sent to bind one first and then back to the request.
//! The cookie is a preference only: it grants nothing and is cleared when used.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;

use crate::app::App;
use crate::http::cookies;

const COOKIE: &str = "yunid_entry";
/// Where a legal person lands.
pub const LANDING: &str = "/account/organisations?entry=legal";

pub fn router() -> Router<App> {
    Router::new().route("/login/legal", get(enter))
}

/// The entry cookie (HttpOnly, Lax, half an hour); `max_age` 0 removes it.
fn cookie(app: &App, value: &str, max_age: i64) -> Cookie<'static> {
    let text = format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; SameSite=Lax; HttpOnly");
    let mut c = Cookie::parse(text).unwrap_or_else(|_| Cookie::new(COOKIE, value.to_owned()));
    c.set_same_site(SameSite::Lax);
    c.set_secure(app.config.secure_cookies());
    c
}

#[derive(Deserialize)]
struct EntryQuery {
    req: Option<String>,
}

async fn enter(State(app): State<App>, jar: CookieJar, Query(q): Query<EntryQuery>) -> Response {
    let signed_in = matches!(cookies::session(&app, &jar, app.now()).await, Ok(Some(_)));
    // A request is carried sealed (`services::authn::pending`): a few hundred bytes to a few KiB.
    match q.req.filter(|r| !r.is_empty() && r.len() <= 16 * 1024) {
        // An app's request: sign in for it (the act-as choice follows for an app that asks `org`).
        // A person with no enterprise to act for is sent to bind one after signing in, and from there
        // back to the request (`for_request`, `bind_path`).
        Some(req) => {
            let mut login = url::Url::parse("http://x/login").unwrap_or_else(|_| unreachable!());
            login.query_pairs_mut().append_pair("req", &req);
            let target = format!("/login?{}", login.query().unwrap_or(""));
            let jar = jar.add(cookie(&app, &for_req(&req), 1800));
            (jar, Redirect::to(&target)).into_response()
        }
        None if signed_in => Redirect::to(LANDING).into_response(),
        None => (jar.add(cookie(&app, "legal", 1800)), Redirect::to("/login")).into_response(),
    }
}

/// The cookie's value for the entry taken inside the app's request `req` (bound to that request).
fn for_req(req: &str) -> String {
    format!(
        "r{}",
        &crate::crypto::token_hash(&format!("legal-entry|{req}"))[..32]
    )
}

/// For the account page: whether this browser came in through the legal-person entry at yunid itself
/// (the cookie is cleared either way it is read).
pub fn take(app: &App, jar: CookieJar) -> (CookieJar, bool) {
    let Some(value) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
        return (jar, false);
    };
    (jar.add(cookie(app, "", 0)), value == "legal")
}

/// After a sign-in for the app's request `req`: whether it went through the legal-person entry for
/// this very request (the cookie is cleared when it is).
pub fn for_request(app: &App, jar: CookieJar, req: &str) -> (CookieJar, bool) {
    match jar.get(COOKIE).map(|c| c.value() == for_req(req)) {
        Some(true) => (jar.add(cookie(app, "", 0)), true),
        _ => (jar, false),
    }
}

/// A request reference as the sign-in path makes them: a sealed request, base64url (a few hundred bytes
/// to a few KiB).
pub fn valid_req(req: &str) -> bool {
    (1..=16 * 1024).contains(&req.len())
        && req
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Where a legal person with no enterprise goes inside the app's request `req`: binding one, then
/// back to the request.
pub fn bind_path(req: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("entry", "legal")
        .append_pair("req", req)
        .finish();
    format!("/account/organisations?{query}")
}
