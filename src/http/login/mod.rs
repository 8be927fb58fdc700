//! Login and consent pages.

mod act_as;
mod consent;
pub mod methods;
mod passkey;
mod ports;
mod register;
pub(crate) mod upstream;
mod upstream_entry;

use axum::Router;
use axum::routing::{get, post};

use crate::app::App;

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
