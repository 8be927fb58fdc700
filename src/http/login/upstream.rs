//! Signing in through an upstream provider (`services::federation`): the login page's links lead to
//! `/login/upstream/{id}` (with the page's CSRF token; the sign-in is bound to this browser and its
//! pending request), the upstream sends the browser back to `/login/upstream/{id}/callback` (one per
//! upstream: an answer is taken only for a sign-in started at that upstream), and the
//! upstream's back-channel logout arrives at `/login/upstream/{id}/logout`.
//!
//! Links and a `Refresh`, not forms and redirects, carry the browser across origins: browsers check a
//! page's `form-action` on every redirect that follows a form submission, so a form posted on yunid's
//! login page could not be redirected to the upstream, nor a form posted on the upstream's login page
//! (whose policy names yunid's callback only) be redirected on from the callback to the app.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::methods::{self, View};
use crate::app::App;
use crate::crypto;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::page::forbidden_csrf;
use crate::http::{cookies, page, pending};
use crate::services::authn::steps::{self, Marker};
use crate::services::federation::flow::{self, Callback, Outcome};
use crate::services::federation::{FederationError, TokenError};
use crate::services::login::SignedIn;
use crate::store::audit::NewEvent;
fn say(lang: Lang, zh: &'static str, en: &'static str) -> &'static str {
    if lang == Lang::Zh { zh } else { en }
}

/// The error page for a failed federated sign-in: what went wrong in general terms (the details stay
/// in the log, which never holds a secret or an ID number).
fn failed(lang: Lang, e: &FederationError) -> Response {
    let (status, zh, en) = match e {
        FederationError::Unknown | FederationError::Disabled => (
            StatusCode::NOT_FOUND,
            "此登录方式不可用。",
            "This sign-in option is not available.",
        ),
        FederationError::State => (
            StatusCode::BAD_REQUEST,
            "此登录已过期或不是在本浏览器中发起的，请重新登录。",
            "This sign-in expired or was not started in this browser; please sign in again.",
        ),
        FederationError::Refused(_) => (
            StatusCode::FORBIDDEN,
            "对方平台未完成登录。",
            "The other platform did not complete the sign-in.",
        ),
        FederationError::Token(TokenError::AuthTime) => (
            StatusCode::FORBIDDEN,
            "此应用要求您刚刚验证过身份，但对方平台没有重新验证您的身份，登录未完成。请重新登录。",
            "This app requires that you proved who you are just now, and the other platform did not check you again; you are not signed in. Please sign in again.",
        ),
        FederationError::Token(_) => (
            StatusCode::BAD_REQUEST,
            "对方平台返回的登录凭证无效，登录未完成。",
            "The other platform's sign-in token is not valid; you are not signed in.",
        ),
        FederationError::PersonUnavailable => (
            StatusCode::FORBIDDEN,
            "该账号当前不可用。",
            "This account is not available.",
        ),
        FederationError::Unavailable(_) | FederationError::Setting(..) | FederationError::Internal(_) => (
            StatusCode::BAD_GATEWAY,
            "暂时无法连接对方平台，请稍后再试。",
            "The other platform cannot be reached right now; please try again later.",
        ),
    };
    match e {
        FederationError::Internal(err) => tracing::error!(error = ?err, "federated sign-in failed"),
        other => tracing::info!(error = %other, "federated sign-in refused"),
    }
    page::error_in(lang, status, say(lang, zh, en))
}

#[derive(askama::Template)]
#[template(path = "upstream_continue.html")]
struct ContinuePage<'a> {
    t: &'static crate::http::i18n::Texts,
    target: &'a str,
}

/// A redirect made into a page that moves on by itself (`Refresh`) or by its link: a new navigation,
/// which the upstream page's `form-action` does not govern.
fn continue_page(lang: Lang, res: Response) -> Response {
    let Some(target) = res
        .headers()
        .get(axum::http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|t| t.starts_with('/') && !t.starts_with("//"))
        .map(str::to_owned)
    else {
        return res;
    };
    let (mut parts, _) = res.into_parts();
    let page = page::render(ContinuePage {
        t: lang.texts(),
        target: &target,
    });
    let (page_parts, body) = page.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(axum::http::header::LOCATION);
    for (k, v) in page_parts.headers.iter() {
        parts.headers.insert(k, v.clone());
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("0; url={target}")) {
        parts
            .headers
            .insert(axum::http::HeaderName::from_static("refresh"), v);
    }
    Response::from_parts(parts, body)
}

#[derive(Deserialize)]
pub struct StartForm {
    csrf: Option<String>,
    req: Option<String>,
}

/// `GET /login/upstream/{id}?csrf=…&req=…`: starts a sign-in at the upstream for this browser (and its
/// pending request, which must belong to this browser). The CSRF token is the login page's (its cookie
/// is `SameSite=Strict`: a link from another site arrives without it).
pub async fn start(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(f): Query<StartForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return forbidden_csrf(lang);
    }
    let now = app.now();
    let ctx = match methods::context(&app, &jar, lang, f.req.as_deref(), Marker::Read, now).await {
        Ok(c) => c,
        Err(e) => return page::internal(e, "upstream sign-in"),
    };
    // Another browser's request starts over there; one answered already starts no upstream sign-in.
    if let Some(next) = ctx.login.restart() {
        return pending::render(&app, ctx.lang, jar, next);
    }
    if f.req.is_some() && ctx.login.request.is_none() {
        return page::fail(ctx.lang, StatusCode::BAD_REQUEST, Msg::RequestExpired);
    }
    let (jar, browser) = cookies::browser(&app, jar);
    // What the app asked of yunid's authentication is asked of the upstream's, and checked.
    let fresh = flow::Freshness {
        login: ctx.login.reauth
            || ctx
                .login
                .request
                .as_ref()
                .is_some_and(|(r, _)| r.has_prompt("login")),
        max_age: ctx.login.request.as_ref().and_then(|(r, _)| r.max_age),
    };
    let started = flow::start(
        &app.federation(),
        &id,
        &crypto::token_hash(&browser),
        f.req.as_deref(),
        fresh,
        now,
        app.random.as_ref(),
    )
    .await;
    match started {
        Ok(url) => (jar, Redirect::to(&url)).into_response(),
        Err(e) => failed(ctx.lang, &e),
    }
}

/// `GET /login/upstream/{id}/callback`: upstream `id`'s answer, in the browser that started the sign-in
/// there.
pub async fn callback(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    Query(q): Query<Callback>,
) -> Response {
    let now = app.now();
    let Some(browser) = cookies::browser_value(&app, &jar) else {
        return failed(lang, &FederationError::State);
    };
    let browser_hash = crypto::token_hash(&browser);
    let outcome = flow::callback(
        &app.federation(),
        &id,
        &q,
        &browser_hash,
        now,
        app.random.as_ref(),
    )
    .await;
    let result: anyhow::Result<Response> = async {
        match outcome {
            Err(e) => {
                if let FederationError::Token(t) = &e {
                    refused_token(&app, t, &addr).await;
                }
                Ok(failed(lang, &e))
            }
            Ok(Outcome::Link {
                offer,
                upstream_name,
                req,
                ..
            }) => {
                let ctx = methods::context(&app, &jar, lang, req.as_deref(), Marker::Unread, now).await?;
                let jar = jar.add(cookies::link_offer(&app, offer));
                let t = ctx.lang.texts();
                let notice = format!("{} {upstream_name}", t.upstream_link_notice);
                let view = View {
                    notice: Some(&notice),
                    ..View::default()
                };
                Ok(methods::render(&app, jar, &ctx, view, StatusCode::OK))
            }
            Ok(Outcome::Conflict {
                upstream_id,
                holder,
                holder_phone,
                ..
            }) => {
                // The holder of the number is told by SMS (no code, no link), and the trail has it.
                crate::services::notify::credential_changed(
                    &app.sms().outbox,
                    holder_phone.as_deref(),
                    crate::services::notify::Change::NumberClaimedUpstream,
                    now,
                )
                .await;
                crate::services::audit::record_quietly(
                    &app.db,
                    app.now(),
                    NewEvent {
                        actor: &format!("upstream:{upstream_id}"),
                        action: "upstream.number_conflict",
                        subject: &holder,
                        address: &addr,
                        outcome: "failure",
                        detail: json!({ "upstream": upstream_id, "holder_level": 1 }).to_string(),
                        ..Default::default()
                    },
                )
                .await;
                Ok(page::error_in(
                    lang,
                    StatusCode::CONFLICT,
                    say(
                        lang,
                        "您的身份证号已被一个未经实名核验的云身份账号登记，因此未能登录，也未关联任何账号。请携带身份证到政务服务窗口办理；如果该账号是您本人注册的，请用它登录并完成实名核验后再试。该账号的手机已收到通知。",
                        "Your ID number is held by a yunid account whose real name was never verified, so you are not signed in and nothing was linked. Please bring your ID card to a service counter; if that account is yours, sign in to it and verify your real name, then try again. The account's phone has been notified.",
                    ),
                ))
            }
            Ok(Outcome::SignedIn(fed)) => {
                let ctx = methods::context(&app, &jar, lang, fed.req.as_deref(), Marker::Read, now).await?;
                // Another browser's request starts over there; one answered already (its app has its
                // code) signs nobody in for it (a second callback for the same `req`).
                if let Some(next) = ctx.login.restart() {
                    return Ok(pending::render(&app, ctx.lang, jar, next));
                }
                // Another person's session in this browser ends (a shared terminal), as with any login.
                if let Some((previous, _)) = ctx
                    .login
                    .session
                    .as_ref()
                    .filter(|(s, _)| s.person_id != fed.person_id)
                {
                    app.logout().end_session(&previous.sid, now).await?;
                }
                let current = ctx
                    .cookie
                    .as_deref()
                    .zip(ctx.login.session.as_ref().map(|(s, _)| s))
                    .filter(|(_, s)| s.person_id == fed.person_id);
                let (cookie, session) =
                    flow::open_session(&app.federation(), current, &fed, now, app.random.as_ref())
                        .await
                        .map_err(anyhow::Error::from)?;
                if fed.linked {
                    crate::services::audit::record_quietly(
                        &app.db,
                        app.now(),
                        NewEvent {
                            actor: &format!("upstream:{}", fed.upstream_id),
                            action: if fed.created {
                                "upstream.person_create"
                            } else {
                                "upstream.link"
                            },
                            subject: &fed.person_id,
                            address: &addr,
                            outcome: "success",
                            detail: json!({ "upstream": fed.upstream_id, "by": "verified_id_number" })
                                .to_string(),
                            ..Default::default()
                        },
                    )
                    .await;
                }
                let signed = SignedIn {
                    cookie,
                    session,
                    consented: None,
                };
                let done = steps::signed_in(&app.authn(), &ctx.login, signed, "fed", &addr, now).await?;
                let res = methods::finish(&app, jar, ctx.lang, "fed", done).await?;
                Ok(continue_page(ctx.lang, res))
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| page::internal(e, "upstream callback"))
}

/// A refused upstream token leaves a trace in the audit trail (which upstream, why).
async fn refused_token(app: &App, why: &TokenError, addr: &str) {
    crate::services::audit::record_quietly(
        &app.db,
        app.now(),
        NewEvent {
            actor: "anonymous",
            action: "upstream.token_refused",
            subject: "",
            address: addr,
            outcome: "failure",
            detail: json!({ "reason": why.to_string() }).to_string(),
            ..Default::default()
        },
    )
    .await;
}

#[derive(askama::Template)]
#[template(path = "upstream_link.html")]
struct LinkPage<'a> {
    t: &'static crate::http::i18n::Texts,
    title: &'a str,
    question: &'a str,
    upstream: &'a str,
    accept: &'a str,
    decline: &'a str,
    csrf: &'a str,
    req: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct LinkQuery {
    req: Option<String>,
}

/// Where the browser goes once the question is answered (or cannot be asked).
fn onwards(app: &App, jar: CookieJar, req: Option<&str>) -> Response {
    let jar = cookies::drop_offer(app, jar);
    match req {
        Some(r) => (jar, Redirect::to(&crate::http::pending::resume_path(r))).into_response(),
        None => {
            let (jar, next) = crate::http::device::after_login(app, jar);
            (jar, Redirect::to(&next)).into_response()
        }
    }
}

/// `GET /login/upstream/link`: right after a sign-in with a credential entered in this browser, asks
/// the person whether the upstream account this browser's link offer names is to be linked to them.
pub async fn confirm_page(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    Query(q): Query<LinkQuery>,
) -> Response {
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        let ctx = methods::context(&app, &jar, lang, q.req.as_deref(), Marker::Unread, now).await?;
        let offer = jar.get(&cookies::link_offer_name(&app)).map(|c| c.value().to_owned());
        let browser = cookies::browser_value(&app, &jar);
        let (Some((session, _)), Some(offer), Some(browser)) = (&ctx.login.session, offer, browser) else {
            return Ok(onwards(&app, jar, q.req.as_deref()));
        };
        let named = flow::offer_to_confirm(&app.federation(), &offer, &crypto::token_hash(&browser), session, now)
            .await
            .map_err(anyhow::Error::from)?;
        let Some((_, name)) = named else {
            return Ok(onwards(&app, jar, q.req.as_deref()));
        };
        let lang = ctx.lang;
        let (jar, csrf) = cookies::csrf(&app, jar);
        let page = page::render(LinkPage {
            t: lang.texts(),
            title: say(lang, "关联账号", "Link account"),
            question: say(
                lang,
                "是否将以下平台的账号关联到您刚登录的云身份账号？关联后，该平台账号可直接登录您的账号：",
                "Link this platform's account to the yunid account you just signed in to? Once linked, it signs you in directly:",
            ),
            upstream: &name,
            accept: say(lang, "关联", "Link"),
            decline: say(lang, "不关联", "Do not link"),
            csrf: &csrf,
            req: q.req.as_deref(),
        });
        Ok((jar, page).into_response())
    }
    .await;
    result.unwrap_or_else(|e| page::internal(e, "upstream link"))
}

#[derive(Deserialize)]
pub struct LinkForm {
    csrf: Option<String>,
    req: Option<String>,
    answer: Option<String>,
}

/// `POST /login/upstream/link`: the answer (CSRF token of this browser). The offer is used up and its
/// cookie removed either way; a link is made only when accepted and still confirmable.
pub async fn confirm(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<LinkForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return forbidden_csrf(lang);
    }
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        let ctx = methods::context(&app, &jar, lang, f.req.as_deref(), Marker::Unread, now).await?;
        let offer = jar
            .get(&cookies::link_offer_name(&app))
            .map(|c| c.value().to_owned());
        let browser = cookies::browser_value(&app, &jar);
        let (Some((session, _)), Some(offer), Some(browser)) = (&ctx.login.session, offer, browser) else {
            return Ok(onwards(&app, jar, f.req.as_deref()));
        };
        let accept = f.answer.as_deref() == Some("link");
        let linked = flow::confirm_offer(
            &app.federation(),
            &offer,
            &crypto::token_hash(&browser),
            session,
            accept,
            now,
        )
        .await
        .map_err(anyhow::Error::from)?;
        if let Some(upstream) = linked {
            crate::services::audit::record_quietly(
                &app.db,
                app.now(),
                NewEvent {
                    actor: &format!("person:{}", session.person_id),
                    action: "upstream.link",
                    subject: &session.person_id,
                    address: &addr,
                    outcome: "success",
                    detail: json!({ "upstream": upstream, "by": "confirmed_after_sign_in" }).to_string(),
                    ..Default::default()
                },
            )
            .await;
        }
        Ok(onwards(&app, jar, f.req.as_deref()))
    }
    .await;
    result.unwrap_or_else(|e| page::internal(e, "upstream link"))
}

#[derive(Deserialize)]
pub struct LogoutForm {
    logout_token: Option<String>,
}

/// `POST /login/upstream/{id}/logout`: the upstream's back-channel logout (Back-Channel Logout 1.0
/// §2.5, §2.8): 200 when the token is valid (whether or not a session was still open), 400 otherwise.
pub async fn backchannel_logout(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    Form(f): Form<LogoutForm>,
) -> Response {
    let now = app.now();
    let bad = |description: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_request", "error_description": description })),
        )
            .into_response()
    };
    let Some(token) = f.logout_token else {
        return bad("logout_token is required".into());
    };
    let sids = match flow::backchannel_logout(&app.federation(), &id, &token, now).await {
        Ok(s) => s,
        Err(FederationError::Internal(e)) => return page::json_internal(&e, "upstream logout"),
        Err(e) => {
            tracing::info!(upstream = %id, error = %e, "upstream logout token refused");
            return bad(e.to_string());
        }
    };
    let mut ended = 0;
    for sid in &sids {
        match app.logout().end_session(sid, now).await {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(e) => return page::json_internal(&e, "upstream logout"),
        }
        // The grants made in those sessions end too, offline ones included.
        if let Err(e) = app.db.revoke_all_session_families(sid, now).await {
            return page::json_internal(&e.into(), "upstream logout");
        }
    }
    crate::services::audit::record_quietly(
        &app.db,
        app.now(),
        NewEvent {
            actor: &format!("upstream:{id}"),
            action: "upstream.logout",
            subject: "",
            address: &addr,
            outcome: "success",
            detail: json!({ "sessions_ended": ended }).to_string(),
            ..Default::default()
        },
    )
    .await;
    StatusCode::OK.into_response()
}
