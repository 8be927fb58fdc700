//! The login page and its methods: password, SMS code (passkeys in `passkey.rs`). Messages never reveal
//! whether an account exists. With a weaker session than the app requires, the page asks for one more
//! factor (step-up) instead of starting over; a failed step-up leaves the session as it was.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::forbidden_csrf;
use crate::app::App;
use crate::crypto;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::{cookies, page, pending};
use crate::services::login::{self, LoginError};
use crate::services::oidc::authorize::AuthRequest;
use crate::services::sms::{Purpose, SendError, VerifyError};
use crate::store::clients::Client;
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

/// What the login page knows about the request it serves.
pub struct Ctx {
    pub req: Option<String>,
    pub pending: Option<(AuthRequest, Client)>,
    /// The stored request, when it belongs to this browser.
    pub bound: Option<pending::Bound>,
    /// `req` names a request started in another browser: it starts over here (`pending::restart`)
    /// before anything is done for it.
    pub foreign: bool,
    pub lang: Lang,
    pub session: Option<(SessionRow, PersonRow)>,
    /// A session exists but is weaker than the app requires.
    pub step_up: bool,
    /// The app forces a re-authentication (`prompt=login`, `max_age`): a login here counts only its
    /// own factors, never the earlier session's.
    pub reauth: bool,
    /// Upstream providers offered on the page: (id, display name, logo URL).
    pub upstreams: Vec<(String, String, Option<String>)>,
}

impl Ctx {
    /// The browser's live session that a successful login renews (same `sid`), with how: a step-up adds
    /// the new factor, a forced re-authentication keeps only the factors of this login.
    pub fn renewable<'a>(&'a self, cookie: Option<&'a str>) -> Option<(&'a str, &'a SessionRow)> {
        cookie.zip(self.session.as_ref().map(|(s, _)| s))
    }

    pub fn renewal(&self) -> login::Renewal {
        if self.reauth {
            login::Renewal::Replace
        } else {
            login::Renewal::StepUp
        }
    }
}

pub async fn context(
    app: &App,
    jar: &CookieJar,
    lang: Lang,
    req: Option<&str>,
    now: i64,
) -> anyhow::Result<Ctx> {
    let (mut pending, mut bound, mut foreign) = (None, None, false);
    if let Some(id) = req {
        match pending::load(app, jar, id, now).await? {
            pending::Lookup::Missing => {}
            pending::Lookup::Foreign(_) => foreign = true,
            pending::Lookup::Bound(b) => {
                let parsed: AuthRequest = serde_json::from_str(&b.row.params)?;
                if let Some(client) = app.db.client(&b.row.client_id).await? {
                    pending = Some((parsed, Client::clone(&client)));
                }
                bound = Some(b);
            }
        }
    }
    // The app's ui_locales choose the language when it names one we have.
    let lang = pending
        .as_ref()
        .and_then(|(r, _)| r.ui_locales.as_deref())
        .and_then(Lang::from_list)
        .unwrap_or(lang);
    let session = cookies::session(app, jar, now).await?;
    let reauth = match (&session, &pending, &bound) {
        (Some((s, _)), Some((r, _)), Some(b)) => {
            r.forces_reauthentication(s, b.row.login_sid.as_deref(), now)
        }
        _ => false,
    };
    let step_up = !reauth
        && match (&session, &pending) {
            (Some((s, _)), Some((r, c))) => s.acr < r.required_acr(c),
            _ => false,
        };
    let upstreams = crate::services::federation::flow::offered(&app.federation())
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Ctx {
        upstreams,
        req: req.map(str::to_owned),
        pending,
        bound,
        foreign,
        lang,
        session,
        step_up,
        reauth,
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
    let link = |m: &str| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(r) = &ctx.req {
            s.append_pair("req", r);
        } else if ctx.step_up {
            s.append_pair("step_up", "account");
        }
        s.append_pair("method", m);
        format!("/login?{}", s.finish())
    };
    let hint = ctx
        .pending
        .as_ref()
        .and_then(|(r, _)| r.login_hint.as_deref())
        .filter(|h| !h.starts_with("org:"));
    // On step-up, a method a one-factor session already used adds nothing: offer only the others. A
    // two-factor session that is only too old (the account page's step-up) is offered both: a factor
    // typed again replaces the session's factors (`login::sign_in`), so a fresh two-factor sign-in takes
    // both, one after the other.
    let used = |m: &str| {
        ctx.step_up
            && ctx
                .session
                .as_ref()
                .is_some_and(|(s, _)| s.acr < 2 && s.amr.split(' ').any(|x| x == m))
    };
    let show_password = !used("pwd");
    let show_sms = !used("sms");
    let method = match view.method {
        "sms" if show_sms => "sms",
        "passkey" => "passkey",
        _ if show_password => "password",
        _ if show_sms => "sms",
        _ => "passkey",
    };
    let nonce = crypto::random_token();
    let upstream_links = if ctx.step_up {
        Vec::new()
    } else {
        super::upstream::links(&ctx.upstreams, &csrf, ctx.req.as_deref())
    };
    let mut res = page::render(page::LoginPage {
        t: ctx.lang.texts(),
        step_up: ctx.step_up,
        client_name: ctx.pending.as_ref().map(|(_, c)| c.name.as_str()),
        error: view.error,
        notice: view.notice,
        show_password,
        show_sms,
        method,
        method_links: (link("password"), link("sms"), link("passkey")),
        csrf: &csrf,
        req: ctx.req.as_deref(),
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
        scan_link: (!ctx.step_up
            && !app.config.scan_apps.is_empty()
            && !ctx.pending.as_ref().is_some_and(|(r, _)| r.has_prompt("login")))
        .then(|| match &ctx.req {
            Some(r) => pending_link("/login/scan", r),
            None => "/login/scan".to_owned(),
        }),
    });
    *res.status_mut() = status;
    if let Some((r, _)) = &ctx.pending {
        res = page::allow_form_target(res, &r.target.redirect_uri);
    }
    if !ctx.step_up {
        res = super::upstream::allow_logos(res, &ctx.upstreams);
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
    let mut ctx = match context(&app, &jar, lang, q.req.as_deref(), now).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    if let (Some(req), true) = (&q.req, ctx.foreign) {
        return pending::restart(req);
    }
    // Without a session there is nothing to step up: the ordinary login page, which also ends on the
    // account page.
    if q.req.is_none() && q.step_up.as_deref() == Some("account") && ctx.session.is_some() {
        ctx.step_up = true;
    }
    if q.req.is_some() && ctx.pending.is_none() {
        return page::fail(ctx.lang, StatusCode::BAD_REQUEST, Msg::RequestExpired);
    }
    let view = View {
        method: q.method.as_deref().unwrap_or("password"),
        ..View::default()
    };
    render(&app, jar, &ctx, view, StatusCode::OK)
}

/// After a successful authentication: sets the cookie, remembers the login for the pending request (in
/// this browser only), and goes back to it (or to the account page).
pub async fn finish(
    app: &App,
    jar: CookieJar,
    ctx: &Ctx,
    (cookie, session): (String, SessionRow),
    method: &str,
    address: &str,
    now: i64,
) -> anyhow::Result<Response> {
    app.db
        .record_login_event(&session.person_id, method, address, "success", now)
        .await?;
    crate::services::audit::record_quietly(
        &app.db,
        app.now(),
        crate::store::audit::NewEvent {
            actor: &format!("person:{}", session.person_id),
            action: "login",
            subject: &session.person_id,
            address,
            outcome: "success",
            detail: serde_json::json!({ "method": method, "acr": session.acr }).to_string(),
            ..Default::default()
        },
    )
    .await;
    app.metrics.login(method, "success");
    let jar = jar.add(cookies::session_cookie(app, cookie));
    let (jar, ask_link) = super::upstream::after_sign_in(app, jar, method);
    if ask_link {
        if let (Some(b), Some(_)) = (&ctx.bound, &ctx.req) {
            app.db
                .set_login_sid(&b.id_hash, &b.browser_hash, &session.sid)
                .await?;
        }
        let to = super::upstream::confirm_path(ctx.req.as_deref());
        return Ok((jar, Redirect::to(&to)).into_response());
    }
    let Some(req) = &ctx.req else {
        // A sign-in the device verification page asked for goes back there.
        let (jar, next) = crate::http::device::after_login(app, jar);
        return Ok((jar, Redirect::to(&next)).into_response());
    };
    if let Some(b) = &ctx.bound {
        app.db
            .set_login_sid(&b.id_hash, &b.browser_hash, &session.sid)
            .await?;
    }
    // Through the legal-person entry, with no enterprise to act for: binding one first, then back.
    let (jar, legal) = crate::http::account::legal_entry::for_request(app, jar, req);
    if legal && app.db.current_reps(&session.person_id, now).await?.is_empty() {
        let to = crate::http::account::legal_entry::bind_path(req);
        return Ok((jar, Redirect::to(&to)).into_response());
    }
    Ok((jar, Redirect::to(&pending::resume_path(req))).into_response())
}

/// A form posted for a request that belongs to another browser: nothing is done for it there.
fn foreign(ctx: &Ctx) -> Option<Response> {
    match (&ctx.req, ctx.foreign) {
        (Some(req), true) => Some(pending::restart(req)),
        _ => None,
    }
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
        let ctx = context(&app, &jar, lang, f.req.as_deref(), now).await?;
        if let Some(restart) = foreign(&ctx) {
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
        let person = match login::password_login(&app, &f.username, &f.password, &addr, now).await? {
            Ok(p) => p,
            Err(e) => {
                app.metrics.login("pwd", e.outcome());
                let (status, message) = match e {
                    LoginError::Invalid => (StatusCode::UNAUTHORIZED, t.err_credentials),
                    LoginError::Throttled => (StatusCode::TOO_MANY_REQUESTS, t.err_throttled),
                    LoginError::Unavailable => (StatusCode::FORBIDDEN, t.err_unavailable),
                    LoginError::Busy => (StatusCode::SERVICE_UNAVAILABLE, t.err_busy),
                };
                let mut res = fail(status, message);
                if e == LoginError::Busy {
                    res.headers_mut().insert(
                        axum::http::header::RETRY_AFTER,
                        axum::http::HeaderValue::from_static("2"),
                    );
                }
                return Ok(res);
            }
        };
        if person.password_must_change {
            let new = f.new_password.as_deref().unwrap_or("");
            let ask = |error, status| {
                let view = View {
                    method: "password",
                    error,
                    notice: Some(t.must_change_password),
                    username: &f.username,
                    new_password: true,
                    ..View::default()
                };
                render(&app, jar.clone(), &ctx, view, status)
            };
            if new.is_empty() {
                return Ok(ask(None, StatusCode::OK));
            }
            if crate::services::password::check_new(new).is_err() || new == f.password {
                return Ok(ask(Some(t.err_new_password), StatusCode::BAD_REQUEST));
            }
            let hash = app.hasher.hash(new.to_owned()).await?;
            app.db.set_password(&person.id, &hash, None, now).await?;
            crate::services::audit::record_quietly(
                &app.db,
                app.now(),
                crate::store::audit::NewEvent {
                    actor: &format!("person:{}", person.id),
                    action: "password.change",
                    subject: &person.id,
                    address: &addr,
                    outcome: "success",
                    detail: r#"{"replaced":"temporary"}"#.into(),
                    ..Default::default()
                },
            )
            .await;
        }
        let cookie = cookies::session_value(&app, &jar);
        let signed = login::sign_in(
            &app,
            ctx.renewable(cookie.as_deref()),
            &person.id,
            &["pwd"],
            ctx.renewal(),
            now,
        )
        .await?;
        finish(&app, jar, &ctx, signed, "pwd", &addr, now).await
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
        let ctx = context(&app, &jar, lang, f.req.as_deref(), now).await?;
        if let Some(restart) = foreign(&ctx) {
            return Ok(restart);
        }
        let t = ctx.lang.texts();
        let phone = f.phone.as_deref().unwrap_or("");
        // No phone typed while signed in: a second factor for the session's own person.
        let purpose = match (&ctx.session, phone.trim().is_empty()) {
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
        let ctx = context(&app, &jar, lang, f.req.as_deref(), now).await?;
        if let Some(restart) = foreign(&ctx) {
            return Ok(restart);
        }
        let t = ctx.lang.texts();
        let verified = match app.sms().verify_code(&f.attempt, &f.code, now).await? {
            Ok(v) => v,
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
        let active = app
            .db
            .person(&verified.person_id)
            .await?
            .is_some_and(|p| p.status == "active");
        if !active {
            app.metrics.login("sms", "unavailable");
            let view = View {
                method: "sms",
                error: Some(t.err_unavailable),
                ..View::default()
            };
            return Ok(render(&app, jar, &ctx, view, StatusCode::FORBIDDEN));
        }
        // A step-up code raises only the session it was sent for.
        let cookie = cookies::session_value(&app, &jar);
        let current = ctx.renewable(cookie.as_deref());
        let current = match verified.purpose.as_str() {
            "stepup" => current.filter(|(_, s)| Some(&s.sid) == verified.session_sid.as_ref()),
            _ => current,
        };
        let signed = login::sign_in(&app, current, &verified.person_id, &["sms"], ctx.renewal(), now).await?;
        finish(&app, jar, &ctx, signed, "sms", &addr, now).await
    }
    .await;
    result.unwrap_or_else(internal)
}
