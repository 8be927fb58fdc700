//! Cookies: the SSO session and the CSRF double-submit cookie. `__Host-` prefixed and `Secure` over HTTPS.

use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::app::App;
use crate::crypto;
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

fn name(app: &App, base: &str) -> String {
    if app.config.secure_cookies() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn build(app: &App, name: String, value: String, same_site: SameSite) -> Cookie<'static> {
    let mut c = Cookie::new(name, value);
    c.set_http_only(true);
    c.set_path("/");
    c.set_same_site(same_site);
    c.set_secure(app.config.secure_cookies());
    c
}

pub fn session_cookie(app: &App, value: String) -> Cookie<'static> {
    build(app, name(app, "yunid_session"), value, SameSite::Lax)
}

pub fn clear_session(app: &App, jar: CookieJar) -> CookieJar {
    let mut c = session_cookie(app, String::new());
    c.make_removal();
    // A pending upstream link offer goes with the session (a shared terminal's next user never sees it).
    drop_offer(app, jar.add(c))
}

/// The live session and its person, if the browser has one.
pub async fn session(
    app: &App,
    jar: &CookieJar,
    now: i64,
) -> anyhow::Result<Option<(SessionRow, PersonRow)>> {
    let Some(cookie) = jar.get(&name(app, "yunid_session")) else {
        return Ok(None);
    };
    let Some((session, person)) =
        crate::services::login::current_session(&app.db, app.config.session_idle_ttl, cookie.value(), now)
            .await?
    else {
        return Ok(None);
    };
    if !person.status.is_active() {
        return Ok(None);
    }
    Ok(Some((session, person)))
}

/// Ensures a CSRF cookie exists; returns the jar and the form token that goes with it.
pub fn csrf(app: &App, jar: CookieJar) -> (CookieJar, String) {
    let cookie_name = name(app, "yunid_csrf");
    if let Some(existing) = jar.get(&cookie_name) {
        let token = app.secrets.csrf_token(existing.value());
        return (jar, token);
    }
    let value = crypto::random_token();
    let token = app.secrets.csrf_token(&value);
    (jar.add(build(app, cookie_name, value, SameSite::Strict)), token)
}

/// True when the form's token matches the browser's CSRF cookie.
pub fn csrf_ok(app: &App, jar: &CookieJar, token: Option<&str>) -> bool {
    match (jar.get(&name(app, "yunid_csrf")), token) {
        (Some(cookie), Some(token)) => app.secrets.csrf_valid(cookie.value(), token),
        _ => false,
    }
}

/// Sets the browser's binding secret: a random value (made by the flow, `services::authn`) in an
/// HttpOnly `__Host-` cookie, set when the browser starts its first authorization request. Every
/// pending request carries the hash of it, sealed, and answers only the browser that holds it
/// (`services::authn::pending`). One value per browser rather than one per request, so that two tabs
/// with two sign-ins do not evict each other's binding.
pub fn set_browser(app: &App, jar: CookieJar, value: String) -> CookieJar {
    // Sent on cross-site requests too (over https): a cross-site POST /authorize must not arrive without
    // it and mint a new one, which would restart every open tab's request. It only names the browser;
    // forms keep their CSRF token.
    let same_site = if app.config.secure_cookies() {
        SameSite::None
    } else {
        SameSite::Lax
    };
    jar.add(build(app, name(app, "yunid_browser"), value, same_site))
}

/// The browser's binding secret, set now (from the application's randomness source) when it has none:
/// for the sign-ins that bind their own state to the browser (upstream, scan).
pub fn browser(app: &App, jar: CookieJar) -> (CookieJar, String) {
    if let Some(existing) = browser_value(app, &jar) {
        return (jar, existing);
    }
    let value = app.random.token();
    (set_browser(app, jar, value.clone()), value)
}

/// The browser's binding secret, when it has one.
pub fn browser_value(app: &App, jar: &CookieJar) -> Option<String> {
    jar.get(&name(app, "yunid_browser"))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The raw session cookie value, if any (to raise that session on step-up).
pub fn session_value(app: &App, jar: &CookieJar) -> Option<String> {
    jar.get(&name(app, "yunid_session")).map(|c| c.value().to_owned())
}

/// Where a sign-in made without an authorization request continues (`/device?user_code=…`): a short-lived
/// cookie set by the device verification page before it sends the person to sign in.
pub fn device_continuation(app: &App, user_code: &str) -> Cookie<'static> {
    let base = build(
        app,
        name(app, "yunid_device"),
        user_code.to_owned(),
        SameSite::Lax,
    );
    // Ten minutes, the longest a device code lives by default.
    let mut c = Cookie::parse(format!("{}; Max-Age=600", base.stripped())).unwrap_or(base.clone());
    c.set_http_only(true);
    c.set_path("/");
    c.set_same_site(SameSite::Lax);
    c.set_secure(app.config.secure_cookies());
    c
}

/// The user code a sign-in continues with, if the device page set one; the cookie is removed.
pub fn take_device_continuation(app: &App, jar: CookieJar) -> (CookieJar, Option<String>) {
    let cookie_name = name(app, "yunid_device");
    let Some(value) = jar.get(&cookie_name).map(|c| c.value().to_owned()) else {
        return (jar, None);
    };
    let mut gone = build(app, cookie_name, String::new(), SameSite::Lax);
    gone.make_removal();
    (jar.add(gone), Some(value).filter(|v| !v.is_empty()))
}

/// The cookie holding an upstream's link offer until the person signs in to yunid (this browser only;
/// `login::upstream`).
pub fn link_offer_name(app: &App) -> String {
    name(app, "yunid_link")
}

pub fn link_offer(app: &App, value: String) -> Cookie<'static> {
    build(app, link_offer_name(app), value, SameSite::Lax)
}

/// The jar without the link offer cookie.
pub fn drop_offer(app: &App, jar: CookieJar) -> CookieJar {
    if jar.get(&link_offer_name(app)).is_none() {
        return jar;
    }
    let mut removal = link_offer(app, String::new());
    removal.make_removal();
    jar.add(removal)
}
