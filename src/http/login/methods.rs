//! The login page and its methods: password, SMS code (passkeys in `passkey.rs`). Messages never reveal
//! whether an account exists. With a weaker session than the app requires, the page asks for one more
//! factor (step-up) instead of starting over; a failed step-up leaves the session as it was. The steps
//! themselves are `services::authn::steps`; this file parses and renders.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::crypto;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::page::forbidden_csrf;
use crate::http::{cookies, page, pending};
use crate::services::authn::steps::{self, Marker, NotSignedIn};
use crate::services::authn::{Next, Stop};
use crate::services::login::{LoginError, Method};
use crate::services::sms::{Purpose, SendError, VerifyError};

/// What the login page knows about the request it serves, and its language.
pub struct Ctx {
    pub login: steps::Login,
    pub lang: Lang,
    /// The browser's binding secret and session cookie.
    pub binding: Option<String>,
    pub cookie: Option<String>,
    /// Upstream providers offered on the page: (id, display name, logo URL).
    pub upstreams: Vec<(String, String, Option<String>)>,
}

impl Ctx {
    pub fn browser(&self) -> crate::services::authn::Browser<'_> {
        pending::browser(&self.binding, &self.cookie)
    }
}

/// The login page's context for `req`; `marker`: whether the request's answered marker is read now
/// (`steps::Marker`).
pub async fn context(
    app: &App,
    jar: &CookieJar,
    lang: Lang,
    req: Option<&str>,
    marker: Marker,
    now: i64,
) -> anyhow::Result<Ctx> {
    let (binding, cookie) = pending::cookies_of(app, jar);
    let browser = pending::browser(&binding, &cookie);
    let login = steps::login_page(&app.authn(), req, browser, marker, now).await?;
    // The app's ui_locales choose the language when it names one we have.
    let lang = login
        .request
        .as_ref()
        .and_then(|(r, _)| r.ui_locales.as_deref())
        .and_then(Lang::from_list)
        .unwrap_or(lang);
    // The database's own error stays the error (a lost database is a 503 page, not a 500).
    let upstreams = crate::services::federation::flow::offered(&app.federation())
        .await
        .map_err(|e| match e {
            crate::services::federation::FederationError::Internal(e) => e,
            other => anyhow::Error::from(other),
        })?;
    Ok(Ctx {
        login,
        upstreams,
        lang,
        binding,
        cookie,
    })
}

#[derive(Default)]
pub struct View<'a> {
    pub method: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub username: &'a str,
    pub phone: &'a str,
    pub sms_attempt: Option<&'a str>,
    pub new_password: bool,
}

pub fn render(app: &App, jar: CookieJar, ctx: &Ctx, view: View<'_>, status: StatusCode) -> Response {
    let (jar, csrf) = cookies::csrf(app, jar);
    let l = &ctx.login;
    let link = |m: &str| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(r) = &l.req {
            s.append_pair("req", r);
        } else if l.step_up {
            s.append_pair("step_up", "account");
        }
        s.append_pair("method", m);
        format!("/login?{}", s.finish())
    };
    let hint = l
        .request
        .as_ref()
        .and_then(|(r, _)| r.login_hint.as_deref())
        .filter(|h| !h.starts_with("org:"));
    // On step-up, a method a one-factor session already used adds nothing: offer only the others. A
    // two-factor session that is only too old (the account page's step-up) is offered both: a factor
    // typed again replaces the session's factors (`login::sign_in`), so a fresh two-factor sign-in takes
    // both, one after the other.
    // Factors carried from a phone or an upstream are never joined by a step-up (`login::sign_in`):
    // none of them counts as used here.
    let used = |m: Method| {
        l.step_up
            && l.session
                .as_ref()
                .is_some_and(|(s, _)| s.acr < 2 && !s.amr.is_carried() && s.amr.contains(m))
    };
    let show_password = !used(Method::Pwd);
    let show_sms = !used(Method::Sms);
    let method = match view.method {
        "sms" if show_sms => "sms",
        "passkey" => "passkey",
        _ if show_password => "password",
        _ if show_sms => "sms",
        _ => "passkey",
    };
    let nonce = crypto::random_token();
    let upstream_links = if l.step_up {
        Vec::new()
    } else {
        super::upstream_entry::links(&ctx.upstreams, &csrf, l.req.as_deref())
    };
    let mut res = page::render(page::LoginPage {
        t: ctx.lang.texts(),
        step_up: l.step_up,
        client_name: l.request.as_ref().map(|(_, c)| c.name.as_str()),
        error: view.error,
        notice: view.notice,
        show_password,
        show_sms,
        method,
        method_links: (link("password"), link("sms"), link("passkey")),
        csrf: &csrf,
        req: l.req.as_deref(),
        username: if view.username.is_empty() {
            hint.unwrap_or("")
        } else {
            view.username
        },
        sms_attempt: view.sms_attempt,
        phone: view.phone,
        register: app.config.self_registration,
        nonce: &nonce,
        new_password: view.new_password,
        upstreams: &upstream_links,
        // A request that asks for a new sign-in now (`prompt=login`) is not offered scanning: the phone's
        // sign-in is an earlier one (`services::scan::start` refuses it too).
        scan_link: (!l.step_up
            && !app.config.scan_apps.is_empty()
            && !l.request.as_ref().is_some_and(|(r, _)| r.has_prompt("login")))
        .then(|| match &l.req {
            Some(r) => pending_link("/login/scan", r),
            None => "/login/scan".to_owned(),
        }),
    });
    *res.status_mut() = status;
    if let Some((r, _)) = &l.request {
        res = page::allow_form_target(res, &r.target.redirect_uri);
    }
    if !l.step_up {
        res = super::upstream_entry::allow_logos(res, &ctx.upstreams);
    }
    (jar, res).into_response()
}

/// `path?req=…`
fn pending_link(path: &str, req: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("req", req)
        .finish();
    format!("{path}?{query}")
}

fn internal(e: anyhow::Error) -> Response {
    crate::http::page::internal(e, "login failed")
}

#[derive(Deserialize)]
pub struct Show {
    req: Option<String>,
    method: Option<String>,
    /// `account`: the account page asks for one more factor for this session before a credential is
    /// added (see `http::account::STEP_UP`); success comes back to the account page.
    step_up: Option<String>,
}

pub async fn show(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<Show>) -> Response {
    let now = app.now();
    // The page only displays: the sign-in it leads to checks the answered marker.
    let mut ctx = match context(&app, &jar, lang, q.req.as_deref(), Marker::Unread, now).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    if let Some(restart) = ctx.login.restart() {
        return pending::render(&app, ctx.lang, jar, restart);
    }
    // Without a session there is nothing to step up: the ordinary login page, which also ends on the
    // account page.
    if q.req.is_none() && q.step_up.as_deref() == Some("account") && ctx.login.session.is_some() {
        ctx.login.step_up = true;
    }
    if q.req.is_some() && ctx.login.request.is_none() {
        return page::fail(ctx.lang, StatusCode::BAD_REQUEST, Msg::RequestExpired);
    }
    let view = View {
        method: q.method.as_deref().unwrap_or("password"),
        ..View::default()
    };
    render(&app, jar, &ctx, view, StatusCode::OK)
}

/// After a successful authentication: sets the session cookie and goes back to the request (or, without
/// one, to the device verification page that asked for the sign-in, else the account page). A sign-in
/// with a credential entered here first asks about this browser's upstream link offer, if it holds one.
pub async fn finish(
    app: &App,
    jar: CookieJar,
    lang: Lang,
    method: &str,
    done: steps::LoggedIn,
) -> anyhow::Result<Response> {
    let jar = jar.add(cookies::session_cookie(app, done.cookie));
    let (jar, ask_link) = super::upstream_entry::after_sign_in(app, jar, method);
    if ask_link {
        let req = match &done.next {
            Some(Next::Resume(r)) => Some(r.as_str()),
            _ => None,
        };
        let to = super::upstream_entry::confirm_path(req);
        return Ok((jar, Redirect::to(&to)).into_response());
    }
    match done.next {
        None => {
            // A sign-in the device verification page asked for goes back there.
            let (jar, next) = crate::http::device::after_login(app, jar);
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Some(next) => {
            // Through the legal-person entry, with no enterprise to act for: binding one first, then back.
            let mut jar = jar;
            if let (Some(req), Next::Resume(resume)) = (&done.req, &next) {
                let legal;
                (jar, legal) = crate::http::account::legal_entry::for_request(app, jar, req);
                if legal
                    && crate::services::identity::reps_in_force(&app.db, &done.person_id, done.now)
                        .await?
                        .is_empty()
                {
                    let to = crate::http::account::legal_entry::bind_path(resume);
                    return Ok((jar, Redirect::to(&to)).into_response());
                }
            }
            // The request's next step in this response (the code, or the page it needs), rather than a
            // redirect to `/authorize/resume` that would read back the session just written.
            // Should that step fail (a database error), the browser still gets its session cookie and
            // resumes the request as before: the sign-in itself is done (review M1).
            let next = match done.go_on {
                Some(go_on) => {
                    let binding = cookies::browser_value(app, &jar);
                    match steps::go_on(&app.authn(), go_on, binding.as_deref(), done.now).await {
                        Ok(step) => step,
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "the step after a sign-in failed; the browser resumes the request");
                            next
                        }
                    }
                }
                None => next,
            };
            Ok(pending::render(app, lang, jar, next))
        }
    }
}

/// A sign-in posted for a request answered already (review M1): it is said so, nobody is signed in.
pub fn answered(app: &App, jar: CookieJar, lang: Lang) -> Response {
    pending::render(app, lang, jar, Next::Stop(Stop::RequestAnswered))
}

/// A form posted for a request that belongs to another browser: nothing is done for it there.
fn foreign(app: &App, jar: &CookieJar, ctx: &Ctx) -> Option<Response> {
    ctx.login
        .restart()
        .map(|next| pending::render(app, ctx.lang, jar.clone(), next))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    req: Option<String>,
    username: String,
    password: String,
    /// Replaces a temporary password from the counter.
    new_password: Option<String>,
}

pub async fn password(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<PasswordForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return forbidden_csrf(lang);
    }
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        // A password is checked (and a temporary one may be replaced) before the session is written:
        // the answered marker is read first.
        let ctx = context(&app, &jar, lang, f.req.as_deref(), Marker::Read, now).await?;
        if let Some(restart) = foreign(&app, &jar, &ctx) {
            return Ok(restart);
        }
        let t = ctx.lang.texts();
        let fail = |status, message| {
            let view = View {
                method: "password",
                error: Some(message),
                username: &f.username,
                ..View::default()
            };
            render(&app, jar.clone(), &ctx, view, status)
        };
        let done = steps::password(
            &app.authn(),
            &ctx.login,
            ctx.browser(),
            steps::PasswordForm {
                username: &f.username,
                password: &f.password,
                new_password: f.new_password.as_deref(),
            },
            &addr,
            now,
        )
        .await?;
        let stop = match done {
            Ok(done) => return finish(&app, jar, ctx.lang, "pwd", done).await,
            Err(stop) => stop,
        };
        match stop {
            steps::PasswordStop::Refused(e) => {
                let (status, message) = match e {
                    LoginError::Throttled => (StatusCode::TOO_MANY_REQUESTS, t.err_throttled),
                    LoginError::Unavailable => (StatusCode::FORBIDDEN, t.err_unavailable),
                    LoginError::Busy => (StatusCode::SERVICE_UNAVAILABLE, t.err_busy),
                    LoginError::Invalid | LoginError::Internal(_) => {
                        (StatusCode::UNAUTHORIZED, t.err_credentials)
                    }
                };
                let mut res = fail(status, message);
                if matches!(e, LoginError::Busy) {
                    res.headers_mut().insert(
                        axum::http::header::RETRY_AFTER,
                        axum::http::HeaderValue::from_static("2"),
                    );
                }
                Ok(res)
            }
            steps::PasswordStop::Answered => Ok(answered(&app, jar, ctx.lang)),
            steps::PasswordStop::MustChange { weak } => {
                let view = View {
                    method: "password",
                    error: weak.then_some(t.err_new_password),
                    notice: Some(t.must_change_password),
                    username: &f.username,
                    new_password: true,
                    ..View::default()
                };
                let status = if weak {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                };
                Ok(render(&app, jar.clone(), &ctx, view, status))
            }
        }
    }
    .await;
    result.unwrap_or_else(internal)
}

#[derive(Deserialize)]
pub struct SmsSendForm {
    csrf: Option<String>,
    req: Option<String>,
    phone: Option<String>,
}

pub async fn sms_send(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<SmsSendForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return forbidden_csrf(lang);
    }
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        // Sending a code answers nothing: the marker is checked where the code is used.
        let ctx = context(&app, &jar, lang, f.req.as_deref(), Marker::Unread, now).await?;
        if let Some(restart) = foreign(&app, &jar, &ctx) {
            return Ok(restart);
        }
        let t = ctx.lang.texts();
        let phone = f.phone.as_deref().unwrap_or("");
        // No phone typed while signed in: a second factor for the session's own person.
        let purpose = match (&ctx.login.session, phone.trim().is_empty()) {
            (Some((s, p)), true) => Purpose::StepUp {
                sid: &s.sid,
                person: p,
            },
            _ => Purpose::Login,
        };
        let sent = app.sms().send_code(Some(phone), purpose, &addr, now).await?;
        let (status, view) = match &sent {
            Ok(attempt) => (
                StatusCode::OK,
                View {
                    method: "sms",
                    notice: Some(t.sms_sent),
                    sms_attempt: Some(attempt),
                    ..View::default()
                },
            ),
            Err(SendError::Phone(e)) => {
                let message = match (ctx.lang, e.code()) {
                    (Lang::Zh, _) => e.message_zh(),
                    (Lang::En, "length") => "A mainland mobile number has 11 digits.",
                    (Lang::En, "prefix") => "A mainland mobile number starts with 13–19.",
                    (Lang::En, _) => "A phone number has digits only.",
                };
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    View {
                        method: "sms",
                        error: Some(message),
                        phone,
                        ..View::default()
                    },
                )
            }
            Err(SendError::Throttled) => (
                StatusCode::TOO_MANY_REQUESTS,
                View {
                    method: "sms",
                    error: Some(t.err_sms_throttled),
                    phone,
                    ..View::default()
                },
            ),
            Err(SendError::NoPhone) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                View {
                    method: "sms",
                    error: Some(t.err_code),
                    ..View::default()
                },
            ),
        };
        Ok(render(&app, jar, &ctx, view, status))
    }
    .await;
    result.unwrap_or_else(internal)
}

#[derive(Deserialize)]
pub struct SmsVerifyForm {
    csrf: Option<String>,
    req: Option<String>,
    attempt: String,
    code: String,
}

pub async fn sms_verify(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<SmsVerifyForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return forbidden_csrf(lang);
    }
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        // The code's use and the session insert check the answered marker (`verify_code`, `sign_in`).
        let ctx = context(&app, &jar, lang, f.req.as_deref(), Marker::Unread, now).await?;
        if let Some(restart) = foreign(&app, &jar, &ctx) {
            return Ok(restart);
        }
        let t = ctx.lang.texts();
        let request = ctx.login.request_hash();
        let verified = match app
            .sms()
            .verify_code(&f.attempt, &f.code, request.as_deref(), now)
            .await?
        {
            Ok(v) => v,
            Err(VerifyError::Answered) => return Ok(answered(&app, jar, ctx.lang)),
            Err(VerifyError::Wrong) => {
                app.metrics.login("sms", "invalid");
                let view = View {
                    method: "sms",
                    error: Some(t.err_code),
                    sms_attempt: Some(&f.attempt),
                    ..View::default()
                };
                return Ok(render(&app, jar, &ctx, view, StatusCode::UNAUTHORIZED));
            }
            Err(VerifyError::Expired) => {
                app.metrics.login("sms", "expired");
                let view = View {
                    method: "sms",
                    error: Some(t.err_code_expired),
                    ..View::default()
                };
                return Ok(render(&app, jar, &ctx, view, StatusCode::UNAUTHORIZED));
            }
        };
        // A step-up code raises only the session it was sent for.
        let step_up_sid = match verified.purpose.as_str() {
            "stepup" => Some(verified.session_sid.as_deref().unwrap_or("")),
            _ => None,
        };
        let proof = steps::Proven {
            person_id: &verified.person_id,
            methods: &[Method::Sms],
            method: "sms",
            step_up_sid,
        };
        match steps::proven(&app.authn(), &ctx.login, ctx.browser(), proof, &addr, now).await? {
            Ok(done) => finish(&app, jar, ctx.lang, "sms", done).await,
            Err(NotSignedIn::Answered) => Ok(answered(&app, jar, ctx.lang)),
            Err(NotSignedIn::Unavailable) => {
                let view = View {
                    method: "sms",
                    error: Some(t.err_unavailable),
                    ..View::default()
                };
                Ok(render(&app, jar, &ctx, view, StatusCode::FORBIDDEN))
            }
        }
    }
    .await;
    result.unwrap_or_else(internal)
}
