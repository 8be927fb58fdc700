//! Login and consent pages.

mod act_as;
mod consent;
pub mod methods;
mod passkey;
mod register;
pub(crate) mod upstream;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;

use crate::app::App;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::{cookies, page, pending};
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

pub fn router() -> Router<App> {
    Router::new()
        .route("/login", get(methods::show).post(methods::password))
        .route("/login/sms/send", post(methods::sms_send))
        .route("/login/sms/verify", post(methods::sms_verify))
        .route("/login/passkey/start", post(passkey::start))
        .route("/login/passkey/finish", post(passkey::finish))
        .route("/consent", get(consent::show).post(consent::submit))
        .route("/act-as", get(act_as::show).post(act_as::submit))
        .route(
            "/login/upstream/link",
            get(upstream::confirm_page).post(upstream::confirm),
        )
        .route("/login/upstream/{id}", get(upstream::start))
        .route("/login/upstream/{id}/callback", get(upstream::callback))
        .route("/login/upstream/{id}/logout", post(upstream::backchannel_logout))
        .route("/register", get(register::show).post(register::submit))
        .route("/register/code", post(register::send_code))
        .route(
            "/static/style.css",
            get(|| async { crate::http::page::stylesheet() }),
        )
        .route(
            "/static/passkey.js",
            get(|| async { crate::http::page::passkey_script() }),
        )
}

/// A form that failed its CSRF check (expired, or posted from elsewhere), in the page language.
pub(crate) fn forbidden_csrf(lang: Lang) -> Response {
    page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken)
}

/// A pending authorization request (`req` of the consent and act-as pages) and who answers it.
pub(crate) struct Pending {
    pub bound: pending::Bound,
    pub session: SessionRow,
    pub person: PersonRow,
}

/// Loads the pending request `req`, bound to this browser, and the signed-in person. `Err` is the page
/// to show instead: the request expired or was answered, it belongs to another browser (it starts over
/// here), or nobody is signed in (`signed_out` says what to show then).
pub(crate) async fn pending(
    app: &App,
    lang: Lang,
    jar: &CookieJar,
    req: &str,
    now: i64,
    signed_out: impl FnOnce() -> Response,
) -> anyhow::Result<Result<Pending, Response>> {
    let bound = match pending::load(app, jar, req, now).await? {
        pending::Lookup::Missing => {
            return Ok(Err(page::fail(
                lang,
                StatusCode::BAD_REQUEST,
                Msg::RequestExpired,
            )));
        }
        pending::Lookup::Foreign(_) => return Ok(Err(pending::restart(req))),
        pending::Lookup::Bound(b) => b,
    };
    let Some((session, person)) = cookies::session(app, jar, now).await? else {
        return Ok(Err(signed_out()));
    };
    Ok(Ok(Pending {
        bound,
        session,
        person,
    }))
}
