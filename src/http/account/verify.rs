//! `/account/verify`: the signed-in person raises their real-name level step by step (level 2 online
//! against the population database and the carrier, level 3 by face verification). Forms carry the
//! CSRF token; outcomes come back as a message code after a redirect (POST, redirect, GET).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::proofing_texts::{ProofingTexts, code_of, message, texts};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::{Lang, Texts};
use crate::http::messages::Msg;
use crate::http::{cookies, page};
use crate::services::proofing::{ProofingError, face, levels};
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

pub fn router() -> Router<App> {
    Router::new()
        .route("/account/verify", get(show))
        .route("/account/verify/online", post(online))
        .route("/account/verify/face/start", post(face_start))
        .route("/account/verify/face/return", get(face_return))
}

#[derive(askama::Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    t: &'static Texts,
    p: &'static ProofingTexts,
    csrf: &'a str,
    message: Option<(&'static str, bool)>,
    level: i64,
    level_name: &'static str,
    online: bool,
    face: bool,
    phone_verified: bool,
}

#[derive(askama::Template)]
#[template(path = "proofing_go.html")]
struct GoPage<'a> {
    t: &'static Texts,
    p: &'static ProofingTexts,
    target: &'a str,
}

#[derive(Deserialize)]
pub(super) struct MessageQuery {
    pub(super) m: Option<String>,
    /// `legal`: arrived through the legal-person entry of the login page.
    pub(super) entry: Option<String>,
    /// The app's request a legal person binds an enterprise for, to go back to.
    pub(super) req: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: Option<String>,
}

pub(super) async fn signed_in(app: &App, jar: &CookieJar) -> anyhow::Result<Option<(SessionRow, PersonRow)>> {
    cookies::session(app, jar, app.now()).await
}

/// Where an outcome goes: back to `path` with its message code. Internal errors are logged here.
pub(super) fn outcome(path: &str, result: Result<&'static str, ProofingError>) -> Response {
    let code = match result {
        Ok(code) => code,
        Err(ProofingError::Internal(e)) => {
            tracing::error!(error = format!("{e:#}"), "proofing step failed");
            "internal"
        }
        Err(e) => code_of(&e),
    };
    let mut url = url::Url::parse("http://x").unwrap_or_else(|_| unreachable!());
    url.set_path(path);
    url.query_pairs_mut().append_pair("m", code);
    let target = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    Redirect::to(&target).into_response()
}

/// The account was just locked (its population record closed): it is signed out here.
pub(super) fn locked(app: &App, lang: Lang, jar: CookieJar) -> Response {
    let text = match lang {
        Lang::Zh => {
            "您的户籍记录已注销，账号已锁定，各处登录均已退出。如有疑问，请携带有效证件到政务服务窗口办理。"
        }
        Lang::En => {
            "Your population record is closed: the account is locked and signed out everywhere. Please visit a government service counter."
        }
    };
    let t = lang.texts();
    let mut res = page::render(crate::http::page::MessagePage {
        t,
        title: t.logout_title,
        text,
        link: None,
    });
    *res.status_mut() = StatusCode::FORBIDDEN;
    (cookies::clear_session(app, jar), res).into_response()
}

async fn show(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<MessageQuery>) -> Response {
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    let standing = match levels::page(&app.proofing(), &person, app.now()).await {
        Ok(Some(s)) => s,
        Ok(None) => return locked(&app, lang, jar),
        Err(e) => return page::internal(anyhow::anyhow!("{e}"), "verify page"),
    };
    let p = texts(lang);
    let (jar, csrf) = cookies::csrf(&app, jar);
    let level_name = p.level_names[(standing.level.clamp(1, 3) - 1) as usize];
    let html = page::render(VerifyPage {
        t: lang.texts(),
        p,
        csrf: &csrf,
        message: q.m.as_deref().and_then(|m| message(lang, m)),
        level: standing.level,
        level_name,
        online: standing.online,
        face: standing.face,
        phone_verified: standing.phone_verified,
    });
    (jar, html).into_response()
}

async fn online(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, form.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken);
    }
    let Ok(Some((_, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    match levels::raise_online(&app.proofing(), &person, &address, app.now()).await {
        Err(ProofingError::RecordClosed) => locked(&app, lang, jar),
        result => outcome("/account/verify", result.map(|_| "raised2")),
    }
}

async fn face_start(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, form.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken);
    }
    let Ok(Some((session, person))) = signed_in(&app, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    match face::start(&app.proofing(), &session, &person, &address, app.now()).await {
        // A page that moves on by itself (and by a link): a redirect after a form submission would be
        // held to this site's `form-action`, and the provider's page is elsewhere.
        Ok(target) => page::render(GoPage {
            t: lang.texts(),
            p: texts(lang),
            target: &target,
        }),
        Err(e) => outcome("/account/verify", Err(e)),
    }
}

#[derive(Deserialize)]
struct ReturnQuery {
    state: Option<String>,
}

async fn face_return(
    State(app): State<App>,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let Ok(Some((session, person))) = signed_in(&app, &jar).await else {
        return outcome("/account/verify", Err(ProofingError::FaceSession));
    };
    let state = q.state.unwrap_or_default();
    let result = face::finish(&app.proofing(), &session, &person, &state, &address, app.now()).await;
    outcome("/account/verify", result.map(|_| "raised3"))
}
