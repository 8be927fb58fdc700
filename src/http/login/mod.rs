//! Login and consent pages.

mod consent;
mod password;

use axum::Router;
use axum::routing::get;

use crate::app::App;

pub fn router() -> Router<App> {
    Router::new()
        .route("/login", get(password::show).post(password::submit))
        .route("/consent", get(consent::show).post(consent::submit))
        .route(
            "/static/style.css",
            get(|| async { crate::http::page::stylesheet() }),
        )
}
