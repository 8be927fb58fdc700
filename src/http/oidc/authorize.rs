//! The authorization endpoint (OIDC Core §3.1.2) and the resumption of a pending request after login
//! or consent. Responses carry `iss` (RFC 9207); errors go to the client only once its redirect URI is
//! trusted, otherwise to an error page.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::Value;

use crate::app::App;
use crate::crypto;
use crate::error::OAuthError;
use crate::http::cookies;
use crate::http::forms::ProtocolParams;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::page;
use crate::http::pending;
use crate::services::identity;
use crate::services::oidc::authorize::{
    self, AuthRequest, Decision, Rejection, ResponseMode, Situation, Target, Untrusted,
};
use crate::services::oidc::claims;
use crate::store::clients::Client;
use crate::store::families::{CodeRow, Family};
use crate::store::orgs::{Organisation, Representation};
use crate::store::sessions::SessionRow;

pub const PAR_URN: &str = "urn:ietf:params:oauth:request_uri:";

pub async fn authorize(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ProtocolParams(params): ProtocolParams,
) -> Response {
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        // RFC 9126 §4: a pushed request replaces every other parameter but client_id. Any other
        // request_uri is validated below and refused with request_uri_not_supported.
        if let Ok(Some(uri)) = params.get("request_uri")
            && uri.starts_with(PAR_URN)
        {
            let Ok(Some(client_id)) = params.get("client_id") else {
                return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::ClientIdRequired));
            };
            let pushed = app.db.take_par(&crypto::token_hash(uri), client_id, now).await?;
            let Some(json) = pushed else {
                return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::RequestUriUnknown));
            };
            let req: AuthRequest = serde_json::from_str(&json)?;
            let Some(client) = app.db.client(&req.client_id).await? else {
                return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::UnknownClient));
            };
            return continue_request(&app, lang, jar, &client, req, None, now).await;
        }
        let client = match params.get("client_id") {
            Ok(Some(id)) => app.db.client(id).await?,
            _ => None,
        };
        let req = authorize::trusted_target(&params, client.as_deref()).and_then(|target| match &client {
            Some(c) => authorize::validate(&params, c, target),
            None => Err(Rejection::Page(Untrusted::UnknownClient)),
        });
        match (req, client) {
            (Ok(req), Some(client)) => continue_request(&app, lang, jar, &client, req, None, now).await,
            (Err(Rejection::Redirect(target, e)), _) => Ok(respond_error(&app, &target, &e)),
            (Err(Rejection::Page(m)), _) => Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::Untrusted(m))),
            (Ok(_), None) => Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::UnknownClient)),
        }
    }
    .await;
    result.unwrap_or_else(internal)
}

fn internal(e: anyhow::Error) -> Response {
    crate::http::page::internal(e, "authorization failed")
}

#[derive(Deserialize)]
pub struct Resume {
    req: String,
}

/// After login or consent: picks up the pending request where it stopped. A request started in another
/// browser starts over here instead: whatever was answered there (login, consent, acting-for choice)
/// does not count, and the person signed in here sees the consent page before any code is issued.
pub async fn resume(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<Resume>) -> Response {
    let now = app.now();
    let result: anyhow::Result<Response> = async {
        let (row, pending) = match pending::load(&app, &jar, &q.req, now).await? {
            pending::Lookup::Missing => {
                return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::RequestExpired));
            }
            pending::Lookup::Foreign(row) => (row, None),
            pending::Lookup::Bound(b) => (b.row.clone(), Some(b)),
        };
        let mut req: AuthRequest = serde_json::from_str(&row.params)?;
        let Some(client) = app.db.client(&row.client_id).await? else {
            return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::UnknownClient));
        };
        if pending.is_none() {
            tracing::info!(client_id = %row.client_id, "a pending request was opened in another browser; starting over");
            req = req.restart();
        }
        let pending = pending.as_ref().map(|b| PendingRef {
            id: &b.id,
            id_hash: &b.id_hash,
            browser_hash: &b.browser_hash,
            login_sid: b.row.login_sid.as_deref(),
        });
        continue_request(&app, lang, jar, &client, req, pending, now).await
    }
    .await;
    result.unwrap_or_else(internal)
}

/// A pending request that belongs to this browser (see `http::pending`).
#[derive(Clone, Copy)]
pub struct PendingRef<'a> {
    pub id: &'a str,
    pub id_hash: &'a str,
    pub browser_hash: &'a str,
    /// The session of a login made for this request in this browser.
    pub login_sid: Option<&'a str>,
}

/// Decides and acts: send to login, to consent, or issue the code. `pending` is the stored request when
/// there is one (always one bound to this browser).
pub async fn continue_request(
    app: &App,
    lang: Lang,
    jar: CookieJar,
    client: &Client,
    req: AuthRequest,
    pending: Option<PendingRef<'_>>,
    now: i64,
) -> anyhow::Result<Response> {
    let mut req = req;
    if req.licence_types.is_none() {
        let types =
            crate::services::licence::requested_types(&app.db, client, &req.scopes, req.claims.as_ref())
                .await?;
        req.licence_types = Some(types.into_iter().map(|t| t.code).collect());
    }
    let session = cookies::session(app, &jar, now).await?;
    let session_row = session.as_ref().map(|(s, _)| s);
    let fresh_login = match (pending.and_then(|p| p.login_sid), session_row) {
        (Some(login_sid), Some(s)) => s.sid == login_sid,
        _ => false,
    };
    let wants_org = req.scopes.iter().any(|s| s == "org");
    let options = match session_row {
        Some(s) if wants_org || req.id_token_hint.is_some() || req.requested_sub().is_some() => {
            identity::acting_options(&app.db, &s.person_id, client, now).await?
        }
        _ => Vec::new(),
    };
    // Whom the app names (id_token_hint, a `claims` sub value): the person, or an organisation the
    // person currently represents for this app (the subject an acting grant gave the app).
    let hint = match &req.id_token_hint {
        None => None,
        Some(raw) => match hint_claims(app, raw) {
            Some(claims) => Some(claims),
            None => {
                let e =
                    OAuthError::invalid_request("id_token_hint is not a valid ID token from this provider");
                return Ok(respond_error(app, &req.target, &e));
            }
        },
    };
    let (hint_matches, named_acting) = match session_row {
        Some(s) if hint.is_some() || req.requested_sub().is_some() => named_subject(
            app,
            client,
            s,
            &options,
            hint.as_ref(),
            req.requested_sub(),
            wants_org,
        ),
        _ => (None, None),
    };
    // Silently, a request for an organisation that names someone else gets the answer every other
    // organisation request without consent gets: nothing tells the app whom the visitor represents.
    if wants_org && req.has_prompt("none") && hint_matches == Some(false) {
        let e = OAuthError::consent_required("consent is needed");
        return fail(app, pending, &req, &e, now).await;
    }
    let consented = match session_row {
        // yunid's own console is first party: nothing to consent to.
        Some(_) if crate::services::console::is_console(client) => Some(req.scope_string()),
        Some(s) => app.db.consent(&s.person_id, &client.id).await?,
        None => None,
    };
    let situation = |acting_org, defer_consent| Situation {
        session: session_row,
        fresh_login,
        hint_matches,
        consented: consented.as_deref(),
        acting_org,
        defer_consent,
        now,
    };
    // Login and step-up first; consent once whom the person acts for is known.
    let session = match authorize::decide(&req, client, &situation(None, wants_org)) {
        Decision::Fail(e) => return fail(app, pending, &req, &e, now).await,
        Decision::Login => return to_page(app, jar, "/login", pending, &req, now).await,
        Decision::Consent | Decision::Issue => match session_row {
            Some(s) => s,
            None => return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::SignInAgain)),
        },
    };
    // Whom the person acts as: chosen by the person (never the app) before consent, since consent is
    // given per organisation.
    if req.acting_of(&session.person_id).is_none() {
        req.acting = None;
        req.acting_by = None;
    }
    if wants_org && req.acting.is_none() {
        let silent = req.has_prompt("none");
        let acting = match named_acting {
            // The app holds this subject already (a grant as that organisation, or as the person).
            Some(acting) => Some(acting),
            None if silent => match req.hinted_org(&options) {
                // Without a page, only an organisation consented to before; the same answer for every
                // other (none represented, another company, a company never consented) — no hint about
                // which companies exist.
                Some(rep) => {
                    let org = options
                        .iter()
                        .find(|(r, _)| r.id == rep)
                        .map(|(_, o)| o.id.as_str());
                    match authorize::decide(&req, client, &situation(org, false)) {
                        Decision::Issue => Some(rep),
                        _ => {
                            let e = OAuthError::consent_required("consent is needed");
                            return fail(app, pending, &req, &e, now).await;
                        }
                    }
                }
                None if req.login_hint.as_deref().is_some_and(|h| h.starts_with("org:")) => {
                    let e = OAuthError::consent_required("consent is needed");
                    return fail(app, pending, &req, &e, now).await;
                }
                // No organisation named: the person as themself, whatever they represent.
                None => Some(String::new()),
            },
            None if options.is_empty() => Some(String::new()),
            None => None,
        };
        match acting {
            Some(a) => {
                req.acting = Some(a);
                req.acting_by = Some(session.person_id.clone());
            }
            None => return to_page(app, jar, "/act-as", pending, &req, now).await,
        }
    }
    let acting_org = match req.acting.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(rep) => match options.iter().find(|(r, _)| r.id == rep) {
            Some((_, org)) => Some(org.id.as_str()),
            // The representation ended meanwhile: ask again (and consent again, for what is chosen).
            None => {
                req.acting = None;
                req.acting_by = None;
                req.consented_by = None;
                return to_page(app, jar, "/act-as", pending, &req, now).await;
            }
        },
    };
    match authorize::decide(&req, client, &situation(acting_org, false)) {
        Decision::Fail(e) => fail(app, pending, &req, &e, now).await,
        Decision::Login => to_page(app, jar, "/login", pending, &req, now).await,
        Decision::Consent => to_page(app, jar, "/consent", pending, &req, now).await,
        Decision::Issue => {
            if let Some(p) = pending
                && !app.db.finish_auth_request(p.id_hash, p.browser_hash, now).await?
            {
                return Ok(page::fail(lang, StatusCode::BAD_REQUEST, Msg::RequestAnswered));
            }
            let code = issue_code(app, client, &req, session, now).await?;
            Ok(respond(app, &req.target, vec![("code", code)]))
        }
    }
}

/// Ends a pending request with an error sent to the app.
async fn fail(
    app: &App,
    pending: Option<PendingRef<'_>>,
    req: &AuthRequest,
    e: &OAuthError,
    now: i64,
) -> anyhow::Result<Response> {
    if let Some(p) = pending {
        app.db.finish_auth_request(p.id_hash, p.browser_hash, now).await?;
    }
    Ok(respond_error(app, &req.target, e))
}

type Options = [(Representation, Organisation)];

/// Checks whom the app named against the signed-in person: `(Some(true), acting)` when the names are
/// the person (`acting` = `""`) or, through an `id_token_hint` that this very app received from a grant
/// the person made acting for an organisation they still represent (`aud` is the app, `act.sub` the
/// person), that organisation (`acting` = its representation); `(Some(false), None)` otherwise. A
/// `claims` sub value counts only for the person: an app cannot pick an organisation by naming it.
fn named_subject(
    app: &App,
    client: &Client,
    session: &SessionRow,
    options: &Options,
    hint: Option<&Value>,
    requested_sub: Option<&str>,
    wants_org: bool,
) -> (Option<bool>, Option<String>) {
    let own = claims::subject(&app.secrets, client, &session.person_id);
    let mut acting: Option<String> = None;
    if let Some(h) = hint {
        let sub = h.get("sub").and_then(Value::as_str).unwrap_or("");
        let for_this_app = match h.get("aud") {
            Some(Value::String(a)) => *a == client.id,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client.id.as_str())),
            _ => false,
        };
        let actor = h.pointer("/act/sub").and_then(Value::as_str);
        acting = if sub == own {
            Some(String::new())
        } else if wants_org && for_this_app && actor == Some(own.as_str()) {
            options
                .iter()
                .find(|(_, org)| claims::subject(&app.secrets, client, &org.id) == sub)
                .map(|(rep, _)| rep.id.clone())
        } else {
            None
        };
        if acting.is_none() {
            return (Some(false), None);
        }
    }
    if let Some(sub) = requested_sub {
        // The person's own subject only, and consistent with the hint.
        if sub != own || acting.as_deref().is_some_and(|a| !a.is_empty()) {
            return (Some(false), None);
        }
        acting = Some(String::new());
    }
    (Some(true), acting)
}

/// Sends the browser to one of our pages for this request, storing the request first if needed (bound
/// to this browser: its binding cookie is set here when it has none yet).
async fn to_page(
    app: &App,
    jar: CookieJar,
    path: &str,
    pending: Option<PendingRef<'_>>,
    req: &AuthRequest,
    now: i64,
) -> anyhow::Result<Response> {
    let (jar, id) = match pending {
        Some(p) => {
            app.db
                .update_auth_request(p.id_hash, p.browser_hash, &serde_json::to_string(req)?)
                .await?;
            (jar, p.id.to_owned())
        }
        None => {
            let (jar, browser) = cookies::browser(app, jar);
            let id = save_pending(app, req, &browser, now).await?;
            (jar, id)
        }
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("req", &id)
        .finish();
    Ok((jar, Redirect::to(&format!("{path}?{query}"))).into_response())
}

async fn save_pending(app: &App, req: &AuthRequest, browser: &str, now: i64) -> anyhow::Result<String> {
    let id = crypto::random_token();
    app.db
        .insert_auth_request(
            &crypto::token_hash(&id),
            &req.client_id,
            &serde_json::to_string(req)?,
            &crypto::token_hash(browser),
            now,
            now + app.config.auth_request_ttl,
        )
        .await?;
    Ok(id)
}

/// The claims of an ID token we issued (its expiry does not matter for a hint).
fn hint_claims(app: &App, hint: &str) -> Option<Value> {
    let (header, claims) = app.keys().verify_hint(hint).ok()?;
    if header.get("typ").and_then(Value::as_str) == Some("at+jwt") {
        return None;
    }
    if claims.get("iss").and_then(Value::as_str) != Some(app.config.iss()) {
        return None;
    }
    claims.get("sub").and_then(Value::as_str)?;
    Some(claims)
}

/// Creates the grant family and a single-use code bound to client, redirect URI and PKCE challenge.
pub async fn issue_code(
    app: &App,
    client: &Client,
    req: &AuthRequest,
    session: &SessionRow,
    now: i64,
) -> anyhow::Result<String> {
    let family = Family {
        id: uuid::Uuid::now_v7().simple().to_string(),
        client_id: client.id.clone(),
        person_id: Some(session.person_id.clone()),
        session_sid: Some(session.sid.clone()),
        scope: req.scope_string(),
        claims: req.claims.as_ref().map(Value::to_string),
        acr: req.reported_acr(session.acr),
        amr: session.amr.clone(),
        auth_time: session.auth_time,
        nonce: req.nonce.clone(),
        created_at: now,
        expires_at: now + app.config.refresh_absolute_ttl,
        revoked_at: None,
        // Acting for an organisation only where the app asked for `org` (and so may learn of it).
        acting_rep_id: req
            .acting
            .clone()
            .filter(|a| !a.is_empty() && req.scopes.iter().any(|s| s == "org")),
        licence_types: req.licence_types.clone().unwrap_or_default().join(" "),
    };
    app.db.insert_family(&family).await?;
    let code = crypto::random_token();
    app.db
        .insert_code(
            &crypto::token_hash(&code),
            &CodeRow {
                client_id: client.id.clone(),
                redirect_uri: req.target.redirect_uri.clone(),
                code_challenge: req.code_challenge.clone(),
                family_id: family.id.clone(),
                expires_at: now + app.config.code_ttl,
            },
        )
        .await?;
    app.db
        .add_session_client(&session.sid, &client.id, &session.person_id, now)
        .await?;
    Ok(code)
}

pub fn respond_error(app: &App, target: &Target, e: &OAuthError) -> Response {
    respond(
        app,
        target,
        vec![
            ("error", e.code.to_owned()),
            ("error_description", e.description.clone()),
        ],
    )
}

/// Sends a response to the client's redirect URI, with `state` and `iss`, by the requested mode.
pub fn respond(app: &App, target: &Target, mut fields: Vec<(&'static str, String)>) -> Response {
    if let Some(state) = &target.state {
        fields.push(("state", state.clone()));
    }
    fields.push(("iss", app.config.iss().to_owned()));
    match target.mode {
        ResponseMode::Query => {
            let Ok(mut url) = url::Url::parse(&target.redirect_uri) else {
                return page::fail(Lang::default(), StatusCode::BAD_REQUEST, Msg::InvalidRedirectUri);
            };
            url.query_pairs_mut()
                .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())));
            (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
        }
        ResponseMode::FormPost => {
            let nonce = crypto::random_token();
            let origin = url::Url::parse(&target.redirect_uri)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            let csp = format!(
                "default-src 'none'; script-src 'nonce-{nonce}'; form-action {origin}; frame-ancestors 'none'"
            );
            let fields: Vec<(&str, String)> = fields.into_iter().collect();
            let mut res = page::render(page::FormPostPage {
                t: crate::http::i18n::Lang::default().texts(),
                action: &target.redirect_uri,
                fields: &fields,
                nonce: &nonce,
            });
            if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
                res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
            }
            res
        }
    }
}
