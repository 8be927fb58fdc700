//! Scan to sign in, over HTTP: the login page's QR code and its status (`/login/scan…`, for the browser
//! that shows it), and the API the province's mobile app calls with what it scanned (`/scan/api/…`,
//! bearer access token; docs/SCAN-API.md). The domain is `services::scan`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::crypto;
use crate::http::cross_texts::{self, CrossTexts};
use crate::http::forms::ClientAddr;
use crate::http::i18n::{Lang, Texts};
use crate::http::login::methods;
use crate::http::messages::Msg;
use crate::http::{cookies, page, pending};
use crate::scope::ScopeSet;
use crate::services::authn::steps::{self, Marker};
use crate::services::login;
use crate::services::oidc::tokens;
use crate::services::scan::{self, BrowserView, Decision, Phone, ScanError, ShownFor};

pub fn router() -> Router<App> {
    Router::new()
        .route("/login/scan", get(show))
        .route("/login/scan/status", get(status))
        .route("/login/scan/finish", post(finish))
        .route("/scan", get(opened_elsewhere))
        .route("/scan/api/scan", post(api_scan))
        .route("/scan/api/answer", post(api_answer))
        .route("/static/scan.js", get(script))
}

const SCAN_JS: &str = include_str!("../../static/scan.js");

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCAN_JS,
    )
}

#[derive(Template)]
#[template(path = "scan_login.html")]
struct ScanPage<'a> {
    t: &'static Texts,
    x: &'static CrossTexts,
    client_name: Option<&'a str>,
    error: Option<&'a str>,
    handle: Option<&'a str>,
    qr_token: &'a str,
    qr_svg: Option<String>,
    number: Option<i64>,
    status_text: &'a str,
    csrf: &'a str,
    req: Option<&'a str>,
    refresh_link: String,
    new_link: String,
    login_link: String,
}

/// `path?req=…&…` with the pairs given (empty values left out).
fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    let query = s.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// What the QR code carries: a URL of ours (a phone camera that opens it in a browser is told to use
/// the app), whose `c` is the request's token.
fn qr_value(app: &App, token: &str) -> String {
    let mut url =
        url::Url::parse(&app.config.endpoint("/scan")).unwrap_or_else(|_| app.config.issuer.clone());
    url.query_pairs_mut().append_pair("c", token);
    url.to_string()
}

#[derive(Deserialize)]
pub struct Show {
    req: Option<String>,
    handle: Option<String>,
    c: Option<String>,
}

/// A page showing the request `handle` (this browser's), or a new one when there is none.
struct Shown<'a> {
    handle: &'a str,
    token: &'a str,
    view: BrowserView,
}

fn render(
    app: &App,
    jar: CookieJar,
    ctx: &methods::Ctx,
    shown: Option<Shown<'_>>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let x = cross_texts::of(ctx.lang);
    let (jar, csrf) = cookies::csrf(app, jar);
    let req = ctx.login.req.as_deref().unwrap_or("");
    let (handle, token, view) = match &shown {
        Some(s) => (Some(s.handle), s.token, s.view.clone()),
        None => (None, "", BrowserView::Expired),
    };
    let status_text = match view {
        BrowserView::Waiting | BrowserView::Scanned { .. } => x.scan_waiting,
        BrowserView::Approved => x.scan_approved,
        BrowserView::Denied => x.scan_denied,
        BrowserView::Expired | BrowserView::Used => x.scan_expired,
    };
    // The code is drawn only while it can still be scanned.
    let qr_svg = match view {
        BrowserView::Waiting if !token.is_empty() => crate::http::qr::svg(&qr_value(app, token)),
        _ => None,
    };
    let number = match view {
        BrowserView::Scanned { number } => Some(number),
        _ => None,
    };
    let mut res = page::render(ScanPage {
        t: ctx.lang.texts(),
        x,
        client_name: ctx.login.request.as_ref().map(|(_, c)| c.name.as_str()),
        error,
        handle,
        qr_token: token,
        qr_svg,
        number,
        status_text,
        csrf: &csrf,
        req: ctx.login.req.as_deref(),
        refresh_link: link(
            "/login/scan",
            &[("req", req), ("handle", handle.unwrap_or("")), ("c", token)],
        ),
        new_link: link("/login/scan", &[("req", req)]),
        login_link: link("/login", &[("req", req)]),
    });
    *res.status_mut() = status;
    if let Some((r, _)) = &ctx.login.request {
        res = page::allow_form_target(res, &r.target.redirect_uri);
    }
    (jar, res).into_response()
}

/// `GET /login/scan`: shows a new QR code bound to this browser (its binding cookie is set here when it
/// has none), or — with `handle` — the one it shows already.
pub async fn show(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    Query(q): Query<Show>,
) -> Response {
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let ctx = methods::context(&app, &jar, lang, q.req.as_deref(), Marker::Read, now).await?;
        // Another browser's request starts over there; one answered already gets no code.
        if let Some(next) = ctx.login.restart() {
            return Ok(pending::render(&app, ctx.lang, jar, next));
        }
        if q.req.is_some() && ctx.login.request.is_none() {
            return Ok(page::fail(ctx.lang, StatusCode::BAD_REQUEST, Msg::RequestExpired));
        }
        let (jar, browser) = cookies::browser(&app, jar);
        let browser_hash = crypto::token_hash(&browser);
        let scan_ctx = app.scan();
        if let Some(handle) = q.handle.as_deref()
            && let Ok(view) = scan::view(&scan_ctx, handle, &browser_hash, now).await
            && !matches!(view, BrowserView::Expired | BrowserView::Used)
        {
            let token = q.c.as_deref().unwrap_or("");
            let shown = Shown { handle, token, view };
            return Ok(render(&app, jar, &ctx, Some(shown), None, StatusCode::OK));
        }
        // The scan is bound to the pending request by a stable id of it (the hash of its id, the same
        // at every step), never by the sealed value, which changes as the request goes on.
        let request_hash = ctx.login.pending.as_ref().map(|p| p.id_hash());
        let shown_for = match (&ctx.login.pending, &request_hash) {
            (Some(p), Some(h)) => Some(ShownFor {
                request_hash: h,
                client_id: &p.req.client_id,
                max_age: p.req.max_age,
                prompt_login: p.req.has_prompt("login"),
            }),
            _ => None,
        };
        let x = cross_texts::of(ctx.lang);
        // Another site's page loading this URL (an image, a frame, a script-driven navigation) would
        // use up the address's new codes for everyone behind it (review F4): no code for it.
        if cross_site(&headers) {
            return Ok(render(
                &app,
                jar,
                &ctx,
                None,
                Some(x.scan_cross_site),
                StatusCode::FORBIDDEN,
            ));
        }
        match scan::start(&scan_ctx, &browser_hash, shown_for, &addr, now).await {
            Ok(started) => {
                let shown = Shown {
                    handle: &started.handle,
                    token: &started.qr_token,
                    view: BrowserView::Waiting,
                };
                Ok(render(&app, jar, &ctx, Some(shown), None, StatusCode::OK))
            }
            Err(ScanError::Disabled) => Ok(page::fail(ctx.lang, StatusCode::NOT_FOUND, Msg::RequestExpired)),
            // The app wants a new sign-in now: the page says so and offers the other ways (no code).
            Err(ScanError::FreshSignInRequired) => Ok(render(
                &app,
                jar,
                &ctx,
                None,
                Some(x.scan_fresh_login),
                StatusCode::FORBIDDEN,
            )),
            Err(ScanError::Throttled { retry_after }) => {
                app.metrics.throttled("scan_start");
                let res = render(
                    &app,
                    jar,
                    &ctx,
                    None,
                    Some(x.scan_throttled),
                    StatusCode::TOO_MANY_REQUESTS,
                );
                Ok(with_retry_after(res, retry_after))
            }
            Err(ScanError::Full { retry_after }) => {
                app.metrics.throttled("scan_live_cap");
                let res = render(
                    &app,
                    jar,
                    &ctx,
                    None,
                    Some(x.scan_busy),
                    StatusCode::SERVICE_UNAVAILABLE,
                );
                Ok(with_retry_after(res, retry_after))
            }
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }
    .await;
    result.unwrap_or_else(|e| page::internal(e, "scan login page"))
}

fn with_retry_after(mut res: Response, seconds: i64) -> Response {
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds.max(1)));
    res
}

/// Whether a request came from another origin (Fetch Metadata `Sec-Fetch-Site`: `cross-site`, or
/// `same-site` — a department app or a page on a sibling subdomain is another party). Same-origin, a typed
/// address or bookmark (`none`) and browsers that send no such header pass.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"))
}

#[derive(Deserialize)]
pub struct StatusQuery {
    handle: String,
}

/// `GET /login/scan/status?handle=…`: where this browser's request stands (JSON, for the page's
/// script). Another browser's handle is `unknown`.
pub async fn status(State(app): State<App>, jar: CookieJar, Query(q): Query<StatusQuery>) -> Response {
    let now = app.now();
    let browser_hash = cookies::browser_value(&app, &jar)
        .map(|b| crypto::token_hash(&b))
        .unwrap_or_default();
    let body = match scan::view(&app.scan(), &q.handle, &browser_hash, now).await {
        Ok(BrowserView::Scanned { number }) => json!({ "status": "scanned", "number": number }),
        Ok(view) => json!({ "status": view.as_str() }),
        Err(ScanError::Internal) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "status": "error" })),
            )
                .into_response();
        }
        Err(_) => return (StatusCode::NOT_FOUND, Json(json!({ "status": "unknown" }))).into_response(),
    };
    Json(body).into_response()
}

#[derive(Deserialize)]
pub struct FinishForm {
    csrf: Option<String>,
    req: Option<String>,
    handle: String,
    c: Option<String>,
}

/// `POST /login/scan/finish`: the browser that showed an approved request signs in with it, once.
pub async fn finish(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<FinishForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return crate::http::page::forbidden_csrf(lang);
    }
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let ctx = methods::context(&app, &jar, lang, f.req.as_deref(), Marker::Read, now).await?;
        // Another browser's request starts over there; one answered already signs nobody in for it.
        if let Some(next) = ctx.login.restart() {
            return Ok(pending::render(&app, ctx.lang, jar, next));
        }
        let x = cross_texts::of(ctx.lang);
        let browser_hash = cookies::browser_value(&app, &jar)
            .map(|b| crypto::token_hash(&b))
            .unwrap_or_default();
        let scan_ctx = app.scan();
        let request_hash = ctx.login.pending.as_ref().map(|p| p.id_hash());
        let approved =
            match scan::finish(&scan_ctx, &f.handle, &browser_hash, request_hash.as_deref(), now).await {
                Ok(a) => a,
                // Pressed before the phone answered: the same page again.
                Err(ScanError::NotApproved) => {
                    let view = scan::view(&scan_ctx, &f.handle, &browser_hash, now)
                        .await
                        .unwrap_or(BrowserView::Expired);
                    let shown = Shown {
                        handle: &f.handle,
                        token: f.c.as_deref().unwrap_or(""),
                        view,
                    };
                    return Ok(render(&app, jar, &ctx, Some(shown), None, StatusCode::CONFLICT));
                }
                Err(ScanError::Internal) => anyhow::bail!("scan finish failed"),
                Err(e) => {
                    app.metrics.login("scan", "invalid");
                    let (status, message) = match e {
                        ScanError::Unknown => (StatusCode::FORBIDDEN, x.scan_refused),
                        ScanError::OtherRequest => (StatusCode::FORBIDDEN, x.scan_other_request),
                        ScanError::TooOld => (StatusCode::FORBIDDEN, x.scan_too_old),
                        ScanError::GrantEnded => (StatusCode::FORBIDDEN, x.scan_refused),
                        _ => (StatusCode::BAD_REQUEST, x.scan_refused),
                    };
                    return Ok(render(&app, jar, &ctx, None, Some(message), status));
                }
            };
        // The session takes the phone's sign-in as it is: its level (a passkey there is two), its time
        // and its methods, with the scan's `mca` — never more, and never newer, than the phone's.
        let carried = login::Carried {
            amr: &approved.amr,
            acr: approved.acr,
            auth_time: approved.auth_time,
        };
        let authn = app.authn();
        let refused = |app: &App, jar: CookieJar| -> anyhow::Result<Response> {
            Ok(render(
                app,
                jar,
                &ctx,
                None,
                Some(x.scan_refused),
                StatusCode::FORBIDDEN,
            ))
        };
        let Some(signed) = steps::carried(
            &authn,
            &ctx.login,
            ctx.browser(),
            &approved.person_id,
            carried,
            now,
        )
        .await?
        else {
            return refused(&app, jar);
        };
        // A sign-out everywhere that ran while the session was being made missed the new session (it
        // turns approved codes to denied, ends the person's sessions, and revokes their grants): the
        // grant is checked again now and the new session ended if it is gone. A check that fails ends it
        // too (never a session whose grant was not seen live).
        let live = scan::grant_live(&scan_ctx, &approved.family_id, &approved.person_id, now).await;
        if !matches!(live, Ok(true)) {
            let ended = app.logout().end_session(&signed.session.sid, now).await;
            if live.is_err() || ended.is_err() {
                anyhow::bail!("scan grant check failed");
            }
            app.metrics.login("scan", "unavailable");
            return refused(&app, jar);
        }
        let done = steps::signed_in(&authn, &ctx.login, signed, "scan", &addr, now).await?;
        methods::finish(&app, jar, ctx.lang, "scan", done).await
    }
    .await;
    result.unwrap_or_else(|e| page::internal(e, "scan sign-in"))
}

/// `GET /scan?c=…`: what a phone camera that is not the app opens. Nothing happens here.
pub async fn opened_elsewhere(lang: Lang) -> Response {
    page::error_in(lang, StatusCode::OK, cross_texts::of(lang).scan_not_here)
}

// ---------------------------------------------------------------------------------------------------
// The app's API

/// An API error: a status and a JSON body `{"error", "error_description"}`.
fn api_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut res = (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn scan_error(e: ScanError) -> Response {
    let (status, code) = match e {
        ScanError::Disabled => (StatusCode::NOT_FOUND, "not_enabled"),
        ScanError::NotScanApp => (StatusCode::FORBIDDEN, "not_scan_app"),
        ScanError::Unknown => (StatusCode::NOT_FOUND, "unknown_code"),
        ScanError::Expired => (StatusCode::GONE, "expired"),
        ScanError::AlreadyScanned => (StatusCode::CONFLICT, "already_scanned"),
        ScanError::NotYours => (StatusCode::CONFLICT, "not_yours"),
        ScanError::NumberMismatch => (StatusCode::CONFLICT, "number_mismatch"),
        ScanError::TooManyWrongNumbers | ScanError::Throttled { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
        }
        ScanError::TooOld | ScanError::FreshSignInRequired => (StatusCode::CONFLICT, "sign_in_too_old"),
        ScanError::OtherRequest => (StatusCode::CONFLICT, "not_scanned"),
        ScanError::Denied | ScanError::NotApproved | ScanError::Used | ScanError::GrantEnded => {
            (StatusCode::CONFLICT, "not_scanned")
        }
        ScanError::Full { .. } => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        ScanError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    api_error(status, code, &e.to_string())
}

/// The scope a token must carry for `/scan/api/*`.
pub const SCAN_SCOPE: &str = "scan";

/// A 403 `insufficient_scope` with the RFC 6750 §3.1 challenge.
fn insufficient_scope() -> Response {
    let mut res = api_error(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "the token lacks the scan scope",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(
            "Bearer realm=\"yunid\", error=\"insufficient_scope\", scope=\"scan\"",
        ),
    );
    res
}

/// A 401 with the RFC 6750 challenge.
fn unauthorized(description: &str) -> Response {
    let mut res = api_error(StatusCode::UNAUTHORIZED, "invalid_token", description);
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"yunid\", error=\"invalid_token\""),
    );
    res
}

/// The phone behind a request: its access token verified, not revoked, for a live grant of an active
/// person.
async fn phone(app: &App, headers: &HeaderMap, address: &str, now: i64) -> Result<Phone, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| unauthorized("a bearer access token is required"))?;
    let at = tokens::parse_access_token(&app.access_tokens(), token, now)
        .map_err(|e| unauthorized(e.description))?;
    let internal = |e: sqlx::Error| page::internal(e.into(), "scan api");
    let family_id = at
        .family_id
        .as_deref()
        .ok_or_else(|| unauthorized("this token does not represent a person"))?;
    if app
        .db
        .access_token_revoked(&at.jti, Some(family_id))
        .await
        .map_err(internal)?
    {
        return Err(unauthorized("token revoked"));
    }
    let family = app
        .db
        .family(family_id)
        .await
        .map_err(internal)?
        .filter(|f| f.revoked_at.is_none() && f.expires_at > now)
        .ok_or_else(|| unauthorized("the grant was revoked"))?;
    // RFC 6750 §3.1: the token must carry the `scan` scope, which the app asks for only for this and
    // never sends to a resource server (a token an API received does not answer scans).
    let scoped = at.claims["scope"]
        .as_str()
        .is_some_and(|s| ScopeSet::parse(s).contains(SCAN_SCOPE));
    if !scoped {
        return Err(insufficient_scope());
    }
    let person_id = family
        .person_id
        .clone()
        .ok_or_else(|| unauthorized("this token does not represent a person"))?;
    let active = app
        .db
        .person(&person_id)
        .await
        .map_err(internal)?
        .is_some_and(|p| p.status.is_active());
    if !active {
        return Err(unauthorized("the person cannot sign in"));
    }
    Ok(Phone {
        client_id: at.client_id,
        person_id,
        amr: family.amr.clone(),
        acr: family.acr,
        auth_time: family.auth_time,
        address: address.to_owned(),
        family_id: family.id.clone(),
    })
}

#[derive(Deserialize)]
pub struct ScanBody {
    /// What the QR code carries (the whole URL, or its `c` alone).
    code: String,
}

/// `POST /scan/api/scan`: the app scanned a code; the first scan claims it for the app's person.
pub async fn api_scan(
    State(app): State<App>,
    headers: HeaderMap,
    ClientAddr(address): ClientAddr,
    Json(body): Json<ScanBody>,
) -> Response {
    let now = app.now();
    let phone = match phone(&app, &headers, &address, now).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let asking = scan::scan(&app.scan(), &phone, &body.code, now).await;
    audit(&app, &phone, "scan.scan", asking.is_ok()).await;
    let asking = match asking {
        Ok(a) => a,
        Err(e) => return scan_error(e),
    };
    let client = match &asking.client_id {
        Some(id) => app.db.client(id).await.ok().flatten(),
        None => None,
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "app": client.map(|c| json!({ "client_id": c.id, "name": c.name })),
            "browser_network": asking.browser_network,
            "same_network": asking.same_network,
            "requested_at": asking.created_at,
            "expires_at": asking.expires_at,
            "number_digits": 2,
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct AnswerBody {
    code: String,
    /// `approve` or `deny`.
    decision: String,
    /// The number the person typed (with `approve`): a JSON number, or the digits as a string.
    number: Option<Typed>,
}

/// A number as the app sends what was typed.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Typed {
    Number(i64),
    Digits(String),
}

impl Typed {
    fn value(&self) -> Option<i64> {
        match self {
            Typed::Number(n) => Some(*n),
            Typed::Digits(s) => {
                let s = s.trim();
                (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse().ok())
                    .flatten()
            }
        }
    }
}

/// `POST /scan/api/answer`: the person who scanned approves (with the number they picked) or denies.
pub async fn api_answer(
    State(app): State<App>,
    headers: HeaderMap,
    ClientAddr(address): ClientAddr,
    Json(body): Json<AnswerBody>,
) -> Response {
    let now = app.now();
    let phone = match phone(&app, &headers, &address, now).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let decision = match (
        body.decision.as_str(),
        body.number.as_ref().and_then(Typed::value),
    ) {
        ("approve", Some(number)) => Decision::Approve { number },
        ("deny", _) => Decision::Deny,
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "decision is approve (with the number typed) or deny",
            );
        }
    };
    let action = match decision {
        Decision::Approve { .. } => "scan.approve",
        Decision::Deny => "scan.deny",
    };
    let answered = scan::answer(&app.scan(), &phone, &body.code, decision, now).await;
    audit(&app, &phone, action, answered.is_ok()).await;
    if answered == Err(ScanError::NumberMismatch) {
        // A failed sign-in attempt of the person: in their login history and the login metric.
        app.metrics.login("scan", "invalid");
        if let Err(e) = app
            .db
            .record_login_event(
                crate::ids::new_id(now, &*app.random),
                &phone.person_id,
                "scan",
                &phone.address,
                "failure",
                now,
            )
            .await
        {
            return page::internal(e.into(), "scan api");
        }
    }
    match answered {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response(),
        Err(e) => scan_error(e),
    }
}

async fn audit(app: &App, phone: &Phone, action: &str, ok: bool) {
    crate::services::audit::record_quietly(
        &app.db,
        app.now(),
        crate::store::audit::NewEvent {
            actor: &format!("person:{}", phone.person_id),
            action,
            subject: &phone.person_id,
            client_id: &phone.client_id,
            address: &phone.address,
            outcome: if ok { "success" } else { "failure" },
            ..Default::default()
        },
    )
    .await;
}
