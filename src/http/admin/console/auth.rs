//! The console signs in through yunid like any app (authorization code, PKCE S256, state, nonce,
//! `acr_values=2`), redeems the code in-process with the authorization code grant, checks the ID token like any
//! relying party, and keeps its own server-side session bound to the yunid session (`sid`). Signing out
//! is RP-initiated logout.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;

use super::labels;
use crate::amr::Method;
use crate::app::App;
use crate::crypto;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::{cookies, page};
use crate::services::admin::{Admin, Role};
use crate::services::console::{self, CLIENT_ID};
use crate::services::oidc::grants::{self, GrantRequest, authorization_code};
use crate::store::audit::NewEvent;
use crate::store::console::{ConsoleLogin, ConsoleSession};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/callback", get(callback))
        .route("/admin/sign-out", post(sign_out))
}

/// How long a browser may take between leaving for `/authorize` and coming back.
const LOGIN_TTL: i64 = 15 * 60;

pub(super) fn cookie_name(app: &App, base: &str) -> String {
    if app.config.secure_cookies() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

pub(super) fn cookie(app: &App, base: &str, value: String) -> Cookie<'static> {
    let mut c = Cookie::new(cookie_name(app, base), value);
    c.set_http_only(true);
    c.set_path("/");
    // Lax: the callback arrives as a top-level navigation from our own pages.
    c.set_same_site(SameSite::Lax);
    c.set_secure(app.config.secure_cookies());
    c
}

pub(super) fn removal(app: &App, base: &str) -> Cookie<'static> {
    let mut c = cookie(app, base, String::new());
    c.make_removal();
    c
}

const SESSION: &str = "yunid_console";
const LOGIN: &str = "yunid_console_login";

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console");
    page::untranslated(StatusCode::INTERNAL_SERVER_ERROR, Msg::Internal)
}

/// A console page path to come back to (never another origin).
fn safe_return(path: &str) -> String {
    if path.starts_with("/admin") && !path.starts_with("//") && !path.contains('\\') {
        path.to_owned()
    } else {
        "/admin".to_owned()
    }
}

/// Starts a sign-in: remembers state, nonce and PKCE verifier server-side and sends the browser to
/// `/authorize` asking for two factors.
pub async fn begin(app: &App, jar: CookieJar, lang: Lang, return_to: &str) -> Response {
    let now = app.now();
    if let Err(e) = console::ensure_client(&app.db, &app.config, &app.secrets, now).await {
        return internal(e);
    }
    let verifier = crypto::random_token();
    let login = ConsoleLogin {
        state: crypto::random_token(),
        nonce: crypto::random_token(),
        verifier,
        return_to: safe_return(return_to),
    };
    let id = crypto::random_token();
    if let Err(e) = app
        .db
        .insert_console_login(&crypto::token_hash(&id), &login, now, now + LOGIN_TTL)
        .await
    {
        return internal(e);
    }
    let challenge = crypto::b64url(&crypto::sha256(login.verifier.as_bytes()));
    let mut url = match url::Url::parse(&app.config.endpoint("/authorize")) {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", &console::redirect_uri(&app.config))
        .append_pair("scope", "openid")
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("acr_values", &console::REQUIRED_ACR.to_string())
        .append_pair("ui_locales", lang.code());
    let jar = jar.add(cookie(app, LOGIN, id));
    (jar, Redirect::to(url.as_str())).into_response()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let now = app.now();
    let refuse = |m: Msg| page::fail(lang, StatusCode::BAD_REQUEST, m);
    let login = match jar.get(&cookie_name(&app, LOGIN)) {
        Some(c) => match app
            .db
            .take_console_login(&crypto::token_hash(c.value()), now)
            .await
        {
            Ok(l) => l,
            Err(e) => return internal(e),
        },
        None => None,
    };
    let jar = jar.add(removal(&app, LOGIN));
    let Some(login) = login else {
        return (
            jar,
            page::error_in(lang, StatusCode::BAD_REQUEST, labels(lang).sign_in_expired),
        )
            .into_response();
    };
    // RFC 6749 §10.12: the response must belong to the sign-in this browser started.
    let state_ok = q
        .state
        .as_deref()
        .is_some_and(|s| crypto::ct_eq(s.as_bytes(), login.state.as_bytes()));
    if !state_ok {
        return (jar, refuse(Msg::SignInStateMismatch)).into_response();
    }
    // RFC 9207: the response names its issuer.
    if q.iss.as_deref() != Some(app.config.iss()) {
        return (jar, refuse(Msg::SignInWrongIssuer)).into_response();
    }
    if let Some(error) = q.error {
        tracing::info!(error = %error, description = q.error_description.as_deref().unwrap_or(""), "console sign-in refused");
        return (
            jar,
            page::fail(lang, StatusCode::FORBIDDEN, Msg::SignInRefused(&error)),
        )
            .into_response();
    }
    let Some(code) = q.code else {
        return (jar, refuse(Msg::SignInIncomplete)).into_response();
    };
    let id_token = match redeem(&app, &code, &login.verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "console code redemption failed");
            return (jar, refuse(Msg::SignInIncomplete)).into_response();
        }
    };
    let signed_in = match console::check_id_token(&app.keys(), app.config.iss(), &id_token, &login.nonce, now)
    {
        Ok(s) => s,
        Err(console::IdTokenError::WeakAcr(_)) => {
            return (jar, page::fail(lang, StatusCode::FORBIDDEN, Msg::SignInWeak)).into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "console ID token refused");
            return (jar, refuse(Msg::SignInIncomplete)).into_response();
        }
    };
    // The yunid session the token speaks of must be alive and the same person's. The token carries
    // the console's own `sid` for it, so it is found among the person's live sessions.
    let yunid = match app.db.sessions_of(&signed_in.person_id, now).await {
        Ok(sessions) => match sessions
            .into_iter()
            .find(|s| app.secrets.client_sid(&s.sid, CLIENT_ID) == signed_in.sid)
        {
            Some(s) => s,
            None => {
                return (
                    jar,
                    page::error_in(lang, StatusCode::BAD_REQUEST, labels(lang).sign_in_expired),
                )
                    .into_response();
            }
        },
        Err(e) => return internal(e),
    };
    let value = crypto::random_token();
    let session = ConsoleSession {
        person_id: signed_in.person_id.clone(),
        sid: yunid.sid.clone(),
        acr: signed_in.acr,
        id_token,
        last_seen: now,
        expires_at: yunid.expires_at.min(now + app.config.session_absolute_ttl),
    };
    if let Err(e) = app
        .db
        .insert_console_session(&crypto::token_hash(&value), &session, now)
        .await
    {
        return internal(e);
    }
    crate::services::audit::record_quietly(
        &app.db,
        app.now(),
        NewEvent {
            actor: &format!("person:{}", signed_in.person_id),
            action: "console.sign_in",
            subject: &signed_in.person_id,
            client_id: CLIENT_ID,
            address: &address,
            outcome: "success",
            detail: json!({ "acr": signed_in.acr }).to_string(),
        },
    )
    .await;
    let jar = jar.add(cookie(&app, SESSION, value));
    (jar, Redirect::to(&login.return_to)).into_response()
}

/// Redeems the code with the authorization code grant, in-process (the very function the token endpoint
/// runs for apps), as the console's client; returns the ID token.
async fn redeem(app: &App, code: &str, verifier: &str) -> anyhow::Result<String> {
    let client = app
        .db
        .client(CLIENT_ID)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(|| anyhow::anyhow!("the console's client is missing or disabled"))?;
    let redirect_uri = console::redirect_uri(&app.config);
    let request = GrantRequest::AuthorizationCode(authorization_code::Input {
        code,
        redirect_uri: &redirect_uri,
        code_verifier: verifier,
    });
    let grant_type = request.grant_type();
    let response = grants::exchange(&app.grants(), &client, request, app.now())
        .await
        .map_err(|e| anyhow::anyhow!("the code was not redeemed: {e}"))?;
    app.metrics.token_issued(grant_type.as_str());
    response
        .id_token
        .ok_or_else(|| anyhow::anyhow!("no id_token in the token response"))
}

/// The signed-in admin: a live console session whose yunid session is still alive, and the roles the
/// person holds now. Otherwise the response to send instead (a new sign-in, or a 403 page).
pub async fn admin(app: &App, jar: &CookieJar, lang: Lang, return_to: &str) -> Result<Admin, Response> {
    let now = app.now();
    let sign_in = || begin(app, jar.clone(), lang, return_to);
    let Some(c) = jar.get(&cookie_name(app, SESSION)) else {
        return Err(sign_in().await);
    };
    let hash = crypto::token_hash(c.value());
    let idle_since = now - app.config.session_idle_ttl;
    let session = match app.db.console_session(&hash, now, idle_since).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(sign_in().await),
        Err(e) => return Err(internal(e)),
    };
    // Logged out of yunid (here, at another app, by an admin, or back-channel): the console ends too.
    let (alive, federated) = match app.db.session_by_sid(&session.sid).await {
        Ok(Some(s)) => (
            s.person_id == session.person_id && s.expires_at > now,
            s.amr.contains(Method::Fed),
        ),
        Ok(None) => (false, false),
        Err(e) => return Err(internal(e)),
    };
    let person = match app.db.person(&session.person_id).await {
        Ok(p) => p,
        Err(e) => return Err(internal(e)),
    };
    let active = person.is_some_and(|p| p.status.is_active());
    if !alive || !active {
        if let Err(e) = app.db.delete_console_sessions_of_sid(&session.sid).await {
            return Err(internal(e));
        }
        return Err(sign_in().await);
    }
    // Admins sign in with yunid's own factors: a sign-in made at an upstream is that upstream's word.
    if federated {
        return Err(page::error_in(
            lang,
            StatusCode::FORBIDDEN,
            labels(lang).federated_session,
        ));
    }
    if session.acr < console::REQUIRED_ACR {
        return Err(page::error_in(
            lang,
            StatusCode::FORBIDDEN,
            labels(lang).needs_2fa,
        ));
    }
    let roles: Vec<Role> = match app.db.admin_roles_of(&session.person_id).await {
        Ok(r) => r.iter().filter_map(|(r, d)| Role::parse(r, d)).collect(),
        Err(e) => return Err(internal(e)),
    };
    if roles.is_empty() {
        return Err(page::error_in(lang, StatusCode::FORBIDDEN, labels(lang).no_role));
    }
    if now > session.last_seen
        && let Err(e) = app.db.touch_console_session(&hash, now).await
    {
        return Err(internal(e));
    }
    Ok(Admin {
        actor: format!("person:{}", session.person_id),
        roles,
    })
}

/// A form post from the console: the CSRF token first, then the signed-in admin.
pub async fn form_admin(
    app: &App,
    jar: &CookieJar,
    lang: Lang,
    csrf: Option<&str>,
) -> Result<Admin, Response> {
    if !cookies::csrf_ok(app, jar, csrf) {
        return Err(page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken));
    }
    admin(app, jar, lang, "/admin").await
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf: Option<String>,
}

/// Ends the console session and logs out of yunid (RP-Initiated Logout 1.0), coming back to `/admin`.
async fn sign_out(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(f): Form<SignOutForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return page::fail(lang, StatusCode::FORBIDDEN, Msg::FormToken);
    }
    let now = app.now();
    let mut hint = None;
    if let Some(c) = jar.get(&cookie_name(&app, SESSION)) {
        let hash = crypto::token_hash(c.value());
        match app.db.console_session(&hash, now, 0).await {
            Ok(Some(s)) => {
                crate::services::audit::record_quietly(
                    &app.db,
                    app.now(),
                    NewEvent {
                        actor: &format!("person:{}", s.person_id),
                        action: "console.sign_out",
                        subject: &s.person_id,
                        client_id: CLIENT_ID,
                        address: &address,
                        outcome: "success",
                        detail: "{}".to_owned(),
                    },
                )
                .await;
                hint = Some(s.id_token);
            }
            Ok(None) => {}
            Err(e) => return internal(e),
        }
        if let Err(e) = app.db.delete_console_session(&hash).await {
            return internal(e);
        }
    }
    let jar = jar.add(removal(&app, SESSION));
    let mut url = match url::Url::parse(&app.config.endpoint("/logout")) {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", CLIENT_ID);
        if let Some(h) = &hint {
            q.append_pair("id_token_hint", h);
            q.append_pair(
                "post_logout_redirect_uri",
                &console::post_logout_redirect_uri(&app.config),
            );
            q.append_pair("state", "signed-out");
        }
    }
    (jar, Redirect::to(url.as_str())).into_response()
}
