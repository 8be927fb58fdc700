//! Passkey login: the page asks for options (JSON), the browser signs, and the form posts the answer.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::http::cookies;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::login::methods::{self, View};
use crate::services::authn::steps::{self, Marker, NotSignedIn};
use crate::services::login::Method;
use crate::services::passkey::{self, PasskeyError};

/// Options for `navigator.credentials.get`, bound to a fresh single-use ceremony.
pub async fn start(State(app): State<App>, jar: CookieJar, headers: HeaderMap) -> Response {
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !cookies::csrf_ok(&app, &jar, token) {
        return (StatusCode::FORBIDDEN, Json(json!({ "error": "csrf" }))).into_response();
    }
    match passkey::start_login(&app.passkeys(), app.now()).await {
        Ok((ceremony, options)) => Json(json!({ "ceremony": ceremony, "options": options })).into_response(),
        Err(PasskeyError::Disabled) => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": "disabled" }))).into_response()
        }
        Err(PasskeyError::Internal(e)) => crate::http::page::json_internal(&e, "passkey start"),
        Err(e) => crate::http::page::json_internal(&anyhow::anyhow!("{e}"), "passkey start"),
    }
}

#[derive(Deserialize)]
pub struct FinishForm {
    csrf: Option<String>,
    req: Option<String>,
    ceremony: String,
    /// The browser's `PublicKeyCredential`, as JSON.
    credential: String,
}

pub async fn finish(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<FinishForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return crate::http::page::fail(lang, StatusCode::FORBIDDEN, crate::http::messages::Msg::FormToken);
    }
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        // The session insert checks the answered marker (`login::sign_in`): not read here.
        let ctx = methods::context(&app, &jar, lang, f.req.as_deref(), Marker::Unread, now).await?;
        if let Some(restart) = ctx.login.restart() {
            return Ok(crate::http::pending::render(&app, ctx.lang, jar, restart));
        }
        let t = ctx.lang.texts();
        let rejected = |jar: CookieJar| {
            let view = View {
                method: "passkey",
                error: Some(t.err_passkey),
                ..View::default()
            };
            methods::render(&app, jar, &ctx, view, StatusCode::UNAUTHORIZED)
        };
        let Ok(credential) = serde_json::from_str(&f.credential) else {
            app.metrics.login("passkey", "invalid");
            return Ok(rejected(jar));
        };
        let person_id = match passkey::finish_login(&app.passkeys(), &f.ceremony, &credential, now).await {
            Ok(p) => p,
            Err(PasskeyError::Internal(e)) => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "passkey login failed");
                app.metrics.login("passkey", "invalid");
                return Ok(rejected(jar));
            }
        };
        let proof = steps::Proven {
            person_id: &person_id,
            methods: &[Method::Hwk, Method::User],
            method: "passkey",
            step_up_sid: None,
        };
        match steps::proven(&app.authn(), &ctx.login, ctx.browser(), proof, &addr, now).await? {
            Ok(done) => methods::finish(&app, jar, ctx.lang, "passkey", done).await,
            Err(NotSignedIn::Answered) => Ok(methods::answered(&app, jar, ctx.lang)),
            Err(NotSignedIn::Unavailable) => {
                let view = View {
                    method: "passkey",
                    error: Some(t.err_unavailable),
                    ..View::default()
                };
                Ok(methods::render(&app, jar, &ctx, view, StatusCode::FORBIDDEN))
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| crate::http::page::internal(e, "passkey login"))
}
