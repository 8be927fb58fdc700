//! Login and consent pages.

mod act_as;
mod consent;
pub mod methods;
mod passkey;
mod ports;
mod register;
pub(crate) mod upstream;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use crate::app::App;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::page;

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
