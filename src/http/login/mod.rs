//! Login and consent pages.

mod act_as;
mod consent;
mod login;
mod register;

use axum::Router;
use axum::routing::{get, post};

use crate::app::App;

pub fn router() -> Router<App> {
    Router::new()
        .route("/login", get(login::show).post(login::password))
        .route("/login/sms/send", post(login::sms_send))
        .route("/login/sms/verify", post(login::sms_verify))
        .route("/consent", get(consent::show).post(consent::submit))
        .route("/act-as", get(act_as::show).post(act_as::submit))
        .route("/register", get(register::show).post(register::submit))
        .route(
            "/static/style.css",
            get(|| async { crate::http::page::stylesheet() }),
        )
}
