//! RP-Initiated Logout 1.0. With a valid `id_token_hint` the session ends at once and the browser goes
//! back to an exactly registered `post_logout_redirect_uri`; otherwise the person confirms on our page
//! first (no forced logout by a cross-site link) and stays on our origin.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde_json::Value;

use crate::app::App;
use crate::http::cookies;
use crate::http::forms::ProtocolParams;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::page;
use crate::services::params::Params;

pub async fn logout(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ProtocolParams(params): ProtocolParams,
) -> Response {
    match handle(&app, lang, jar, &params).await {
        Ok(r) => r,
        Err(e) => crate::http::page::internal(e, "logout failed"),
    }
}

async fn handle(app: &App, lang: Lang, jar: CookieJar, params: &Params) -> anyhow::Result<Response> {
    let now = app.now();
    let bad = |m: Msg| Ok(page::fail(lang, StatusCode::BAD_REQUEST, m));
    let get = |name: &str| params.get(name).ok().flatten().map(str::to_owned);
    if params.any_repeated().is_some() {
        return bad(Msg::RepeatedParameter);
    }
    // The hint must be an ID token we signed (any alg `none` or forged token fails verification).
    let hint = match get("id_token_hint") {
        None => None,
        Some(h) => match app.keys().verify_hint(&h) {
            Ok((header, claims))
                if header.get("typ").and_then(Value::as_str) != Some("at+jwt")
                    && claims.get("iss").and_then(Value::as_str) == Some(app.config.iss()) =>
            {
                Some(claims)
            }
            _ => return bad(Msg::BadIdTokenHint),
        },
    };
    let hint_client = hint.as_ref().and_then(|c| c.get("aud")).and_then(|a| {
        a.as_str()
            .map(str::to_owned)
            .or_else(|| a.get(0)?.as_str().map(str::to_owned))
    });
    let client_id = match (get("client_id"), hint_client) {
        (Some(a), Some(b)) if a != b => return bad(Msg::ClientMismatch),
        (a, b) => a.or(b),
    };
    let redirect = get("post_logout_redirect_uri");
    if let Some(uri) = &redirect {
        let client = match &client_id {
            Some(id) => app.db.client(id).await?,
            None => None,
        };
        let registered = client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
        if !registered {
            return bad(Msg::PostLogoutUnregistered);
        }
    }
    let session = cookies::session(app, &jar, now).await?;
    let confirmed = params.get("confirm").ok().flatten() == Some("yes")
        && cookies::csrf_ok(app, &jar, params.get("csrf").ok().flatten());
    // The hint proves the request comes from an app this very session signed in to only if its `sid`
    // is this session's; otherwise (or with no hint) the person confirms first.
    // Each app holds its own `sid` for the session; ID tokens issued before that carry the session's.
    let hint_is_this_session = match (&hint, &session) {
        (Some(claims), Some((s, _))) => {
            let held = claims.get("sid").and_then(Value::as_str);
            let own = client_id.as_deref().map(|id| app.secrets.client_sid(&s.sid, id));
            held.is_some() && (held == own.as_deref() || held == Some(s.sid.as_str()))
        }
        (Some(_), None) => true,
        _ => false,
    };
    if !hint_is_this_session && !confirmed {
        if session.is_none() {
            return Ok(page::logged_out(lang));
        }
        let (jar, csrf) = cookies::csrf(app, jar);
        let mut hidden = Vec::new();
        for name in ["client_id", "id_token_hint", "post_logout_redirect_uri", "state"] {
            if let Some(v) = get(name) {
                hidden.push((name, v));
            }
        }
        let html = page::render(page::LogoutConfirmPage {
            t: lang.texts(),
            csrf: &csrf,
            hidden,
        });
        // Confirmed, it goes back to the app (a registered URI, checked above).
        let html = match &redirect {
            Some(uri) => page::allow_form_target(html, uri),
            None => html,
        };
        return Ok((jar, html).into_response());
    }
    if let Some((s, _)) = &session {
        app.logout().end_session(&s.sid, now).await?;
    }
    let jar = cookies::clear_session(app, jar);
    // Only a logout backed by a valid hint returns to the app (a registered URI, checked above).
    match (redirect, hint) {
        (Some(uri), Some(_)) => {
            let mut url = url::Url::parse(&uri)?;
            if let Some(state) = get("state") {
                url.query_pairs_mut().append_pair("state", &state);
            }
            Ok((jar, axum::response::Redirect::to(url.as_str())).into_response())
        }
        _ => Ok((jar, page::logged_out(lang)).into_response()),
    }
}
