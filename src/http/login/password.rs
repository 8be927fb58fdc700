//! The password login page. Messages never reveal whether an account exists.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::crypto;
use crate::http::forms::ClientAddr;
use crate::http::{cookies, page};
use crate::services::login::{self, LoginError};
use crate::services::oidc::authorize::AuthRequest;

#[derive(Deserialize)]
pub struct Show {
    req: Option<String>,
}

/// The pending request's login hint and client name, if the request is still open.
async fn request_context(
    app: &App,
    req: Option<&str>,
    now: i64,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let Some(req) = req else {
        return Ok((None, None));
    };
    let Some(pending) = app.db.auth_request(&crypto::token_hash(req), now).await? else {
        return Ok((None, None));
    };
    let parsed: AuthRequest = serde_json::from_str(&pending.params)?;
    let client = app.db.client(&pending.client_id).await?.map(|c| c.name);
    Ok((parsed.login_hint, client))
}

pub async fn show(State(app): State<App>, jar: CookieJar, Query(q): Query<Show>) -> Response {
    let now = app.now();
    let (hint, client_name) = match request_context(&app, q.req.as_deref(), now).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "login page");
            return page::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    if q.req.is_some() && client_name.is_none() {
        return page::error(StatusCode::BAD_REQUEST, "this sign-in request has expired");
    }
    let (jar, csrf) = cookies::csrf(&app, jar);
    let html = page::login(&page::LoginForm {
        req: q.req.as_deref(),
        csrf: &csrf,
        username: hint.as_deref().unwrap_or(""),
        error: None,
        client_name: client_name.as_deref(),
    });
    (jar, html).into_response()
}

#[derive(Deserialize)]
pub struct Submit {
    csrf: Option<String>,
    req: Option<String>,
    username: String,
    password: String,
}

pub async fn submit(
    State(app): State<App>,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<Submit>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return page::error(
            StatusCode::FORBIDDEN,
            "the form expired or did not come from this site; reload the page",
        );
    }
    let now = app.now();
    let outcome = login::password_login(&app, &f.username, &f.password, &addr, now).await;
    let fail = |status: StatusCode, message: &str, jar: CookieJar| {
        let (jar, csrf) = cookies::csrf(&app, jar);
        let html = page::login(&page::LoginForm {
            req: f.req.as_deref(),
            csrf: &csrf,
            username: &f.username,
            error: Some(message),
            client_name: None,
        });
        (status, jar, html).into_response()
    };
    let person = match outcome {
        Ok(Ok(p)) => p,
        Ok(Err(LoginError::Invalid)) => {
            return fail(
                StatusCode::UNAUTHORIZED,
                "账号或密码不正确。The account or password is incorrect.",
                jar,
            );
        }
        Ok(Err(LoginError::Throttled)) => {
            return fail(
                StatusCode::TOO_MANY_REQUESTS,
                "尝试次数过多，请稍后再试。Too many attempts; try again later.",
                jar,
            );
        }
        Ok(Err(LoginError::Unavailable)) => {
            return fail(
                StatusCode::FORBIDDEN,
                "该账号已被锁定或停用。This account is locked or disabled.",
                jar,
            );
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "password login failed");
            return page::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let started = login::start_session(&app, &person.id, "pwd", 1, now).await;
    let (cookie, session) = match started {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cannot start session");
            return page::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let jar = jar.add(cookies::session_cookie(&app, cookie));
    let Some(req) = f.req else {
        return (jar, Redirect::to("/")).into_response();
    };
    if let Err(e) = app
        .db
        .set_login_sid(&crypto::token_hash(&req), &session.sid)
        .await
    {
        tracing::error!(error = %e, "cannot record login for request");
        return page::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let mut url = match url::Url::parse("http://x/authorize/resume") {
        Ok(u) => u,
        Err(_) => return page::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    url.query_pairs_mut().append_pair("req", &req);
    let location = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    (jar, Redirect::to(&location)).into_response()
}
