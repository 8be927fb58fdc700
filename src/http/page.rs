//! Server-rendered pages: askama templates under `templates/` (auto-escaped), in the page language.
//! No inline script: the passkey page loads `/static/passkey.js`; the form_post page runs by nonce.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::http::i18n::{Lang, Texts};
use crate::http::messages::Msg;

/// Renders a template; a rendering failure (a bug) becomes a plain 500.
pub fn render(page: impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// The Content-Security-Policy of yunid's pages (the router adds it to every response that has none).
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// For a page whose forms lead on to an app (login and step-up, consent, acting-for choice, logout
/// confirmation): browsers check `form-action` on every redirect that follows a submission too, so the
/// last hop to the app would be blocked unless the origin of `target` (a registered redirect URI) is
/// allowed besides our own.
pub fn allow_form_target(mut res: Response, target: &str) -> Response {
    let Ok(origin) = url::Url::parse(target).map(|u| u.origin()) else {
        return res;
    };
    if !origin.is_tuple() {
        return res;
    }
    let csp = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origin.ascii_serialization()),
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&csp) {
        res.headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
    res
}

const STYLE: &str = include_str!("../../static/style.css");
const PASSKEY_JS: &str = include_str!("../../static/passkey.js");

pub fn stylesheet() -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
}

pub fn passkey_script() -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PASSKEY_JS,
    )
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'static Texts,
    message: &'a str,
}

pub fn error_in(lang: Lang, status: StatusCode, message: &str) -> Response {
    let mut res = render(ErrorPage {
        t: lang.texts(),
        message,
    });
    *res.status_mut() = status;
    res
}

/// An error page whose sentence is one of [`Msg`], in the page language.
pub fn fail(lang: Lang, status: StatusCode, msg: Msg<'_>) -> Response {
    error_in(lang, status, &msg.text(lang))
}

/// Marks an error page rendered where the request's language was not at hand;
/// [`in_request_language`] renders it again in that language.
#[derive(Debug, Clone, Copy)]
pub struct Untranslated(pub Msg<'static>);

/// An error page in the default language, put into the request's language on the way out.
pub fn untranslated(status: StatusCode, msg: Msg<'static>) -> Response {
    let mut res = fail(Lang::default(), status, msg);
    res.extensions_mut().insert(Untranslated(msg));
    res
}

/// Middleware: an [`Untranslated`] page is rendered again in the request's language (headers such as
/// `Retry-After` kept).
pub async fn in_request_language(
    lang: Lang,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    match res.extensions().get::<Untranslated>() {
        Some(Untranslated(msg)) if lang != Lang::default() => {
            let mut fresh = fail(lang, res.status(), *msg);
            for (name, value) in res.headers() {
                if name != axum::http::header::CONTENT_LENGTH {
                    fresh.headers_mut().insert(name.clone(), value.clone());
                }
            }
            fresh
        }
        _ => res,
    }
}

/// The page for a failure the person cannot fix: 503 with `Retry-After` when the database is unreachable
/// (worth trying again shortly), otherwise 500. The error is logged with its chain under `context`.
pub fn internal(e: anyhow::Error, context: &str) -> Response {
    let retry = |msg| {
        let mut res = untranslated(StatusCode::SERVICE_UNAVAILABLE, msg);
        res.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
        res
    };
    if crate::store::is_unavailable_chain(&e) {
        tracing::warn!(error = format!("{e:#}"), "{context}: database unavailable");
        return retry(Msg::Unavailable);
    }
    if e.downcast_ref::<crate::services::password::Busy>().is_some() {
        tracing::warn!("{context}: the password hashing queue is full");
        return retry(Msg::Busy);
    }
    tracing::error!(error = format!("{e:#}"), "{context}");
    untranslated(StatusCode::INTERNAL_SERVER_ERROR, Msg::Internal)
}

/// The JSON endpoints' counterpart of [`internal`]: `{"error":"temporarily_unavailable"}` with 503 and
/// `Retry-After` when the database is unreachable, otherwise `{"error":"internal"}` with 500.
pub fn json_internal(e: &anyhow::Error, context: &str) -> Response {
    use axum::response::IntoResponse;
    if crate::store::is_unavailable_chain(e) {
        tracing::warn!(error = format!("{e:#}"), "{context}: database unavailable");
        let body = axum::Json(serde_json::json!({ "error": "temporarily_unavailable" }));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "5")],
            body,
        )
            .into_response();
    }
    tracing::error!(error = format!("{e:#}"), "{context}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({ "error": "internal" })),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub t: &'static Texts,
    pub step_up: bool,
    pub client_name: Option<&'a str>,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub show_password: bool,
    pub show_sms: bool,
    /// `password`, `sms` or `passkey`.
    pub method: &'a str,
    /// Links to the three methods (password, sms, passkey) for this request.
    pub method_links: (String, String, String),
    pub csrf: &'a str,
    pub req: Option<&'a str>,
    pub username: &'a str,
    pub sms_attempt: Option<&'a str>,
    pub phone: &'a str,
    pub register: bool,
    pub nonce: &'a str,
    /// The person signed in with a temporary password and must choose a new one.
    pub new_password: bool,
    /// Upstream providers to sign in through: (link that starts the sign-in, display name, logo URL).
    pub upstreams: &'a [(String, String, Option<String>)],
    /// The scan-to-sign-in page for this request, when scanning is on.
    pub scan_link: Option<String>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub t: &'static Texts,
    pub req: &'a str,
    pub csrf: &'a str,
    /// Names the session the page was shown to (`http::pending::page_owner`): an answer posted after
    /// someone else signed in on the same browser is not taken as theirs.
    pub who: &'a str,
    pub client_name: &'a str,
    pub person_name: &'a str,
    pub items: Vec<String>,
    /// The organisation the person acts for in this request ("name（credit code）"), if any: the consent
    /// is given for it.
    pub acting_for: Option<String>,
    /// For a self-registered app (dynamic registration, not reviewed by an administrator): the host it
    /// sends the person back to, shown with a warning — its name is whatever it chose to call itself.
    pub self_registered: Option<&'a str>,
}

/// Plain words for what a scope releases.
pub fn scope_text(t: &'static Texts, scope: &str) -> &'static str {
    match scope {
        "openid" => t.scope_openid,
        "profile" => t.scope_profile,
        "phone" => t.scope_phone,
        "identity" => t.scope_identity,
        "org" => t.scope_org,
        "offline_access" => t.scope_offline,
        "licences" => t.scope_licences,
        "scan" => t.scope_scan,
        _ => "",
    }
}

pub struct ActChoice {
    pub value: String,
    pub org_name: String,
    pub credit_code: String,
    pub role: &'static str,
    /// Preselected (the app's `login_hint=org:` named it); the person still chooses.
    pub selected: bool,
}

pub fn role_text(t: &'static Texts, role: &str) -> &'static str {
    match role {
        "legal_representative" => t.role_legal,
        "manager" => t.role_manager,
        _ => t.role_agent,
    }
}

#[derive(Template)]
#[template(path = "act_as.html")]
pub struct ActAsPage<'a> {
    pub t: &'static Texts,
    pub req: &'a str,
    pub csrf: &'a str,
    /// As on the consent page.
    pub who: &'a str,
    pub person_name: &'a str,
    pub client_name: &'a str,
    /// "Myself" is preselected unless the app named one of the organisations.
    pub self_selected: bool,
    pub choices: Vec<ActChoice>,
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage<'a> {
    pub t: &'static Texts,
    pub csrf: &'a str,
    /// Step 2 (code and details) for this attempt; step 1 (the phone) without one.
    pub attempt: Option<&'a str>,
    pub id_number: &'a str,
    pub name: &'a str,
    pub phone: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub text: &'a str,
    pub link: Option<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
pub struct LogoutConfirmPage<'a> {
    pub t: &'static Texts,
    pub csrf: &'a str,
    pub hidden: Vec<(&'a str, String)>,
}

#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPostPage<'a> {
    pub t: &'static Texts,
    pub action: &'a str,
    pub fields: &'a [(&'a str, String)],
    pub nonce: &'a str,
}

pub fn logged_out(lang: Lang) -> Response {
    let t = lang.texts();
    render(MessagePage {
        t,
        title: t.logout_title,
        text: t.logged_out,
        link: None,
    })
}

/// The home page: what yunid is, and where to go from here.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage<'a> {
    pub t: &'static Texts,
    /// The signed-in person's name, if anyone is signed in.
    pub person_name: Option<&'a str>,
    /// The signed-in person holds an administrator role: a link to the console.
    pub admin: bool,
}

/// A form that failed its CSRF check (expired, or posted from elsewhere), in the page language.
pub fn forbidden_csrf(lang: Lang) -> Response {
    fail(lang, StatusCode::FORBIDDEN, Msg::FormToken)
}
