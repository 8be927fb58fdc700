//! The authorization endpoint (OIDC Core §3.1.2) and the resumption of a pending request after login
//! or consent: parse, call the step of `services::authn`, render. Responses carry `iss` (RFC 9207);
//! errors go to the client only once its redirect URI is trusted, otherwise to an error page.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::http::forms::ProtocolParams;
use crate::http::i18n::Lang;
use crate::http::pending;
use crate::services::authn::steps;

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
