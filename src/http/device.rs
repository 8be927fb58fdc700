//! `/device`: the verification page of the device authorization grant (RFC 8628 §3.3). The person
//! types the code the device shows (or arrives with it from the device's QR code), signs in with any
//! login method, sees which app on which device asks, and allows or denies. Also `/device/qr.svg`, the
//! QR code a device can show for `verification_uri_complete` without drawing one itself.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::http::cross_texts::{self, CrossTexts};
use crate::http::forms::ClientAddr;
use crate::http::i18n::{Lang, Texts};
use crate::http::{cookies, page, pending};
use crate::services::device::{self, Answer, DeviceError};
use crate::store::device::DeviceApproval;

pub fn router() -> Router<App> {
    Router::new()
        .route("/device", get(show).post(answer))
        .route("/device/qr.svg", get(qr))
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    t: &'static Texts,
    x: &'static CrossTexts,
    /// `enter`, `consent`, `approved` or `denied`.
    mode: &'a str,
    error: Option<&'a str>,
    user_code: &'a str,
    csrf: &'a str,
    who: &'a str,
    consent: &'a str,
    person_name: &'a str,
    client_name: &'a str,
    items: Vec<String>,
    kiosk: bool,
    /// The device's network (IPv4 /24, IPv6 /48), never its full address.
    network: String,
    same_network: bool,
    /// How long ago the device asked for the code.
    issued: String,
}

impl<'a> DevicePage<'a> {
    fn new(lang: Lang, mode: &'a str) -> DevicePage<'a> {
        DevicePage {
            t: lang.texts(),
            x: cross_texts::of(lang),
            mode,
            error: None,
            user_code: "",
            csrf: "",
            who: "",
            consent: "",
            person_name: "",
            client_name: "",
            items: Vec::new(),
            kiosk: false,
            network: String::new(),
            same_network: false,
            issued: String::new(),
        }
    }
}

fn with_status(page: DevicePage<'_>, status: StatusCode) -> Response {
    let mut res = page::render(page);
    *res.status_mut() = status;
    res
}

/// Where a sign-in without an authorization request continues: back to the device page when it sent the
/// person to sign in, else the account page.
pub fn after_login(app: &App, jar: CookieJar) -> (CookieJar, String) {
    let (jar, code) = cookies::take_device_continuation(app, jar);
    let next = match code.as_deref().and_then(device::normalize) {
        Some(code) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &device::display(&code))
                .finish();
            format!("/device?{query}")
        }
        None => "/account".to_owned(),
    };
    (jar, next)
}

#[derive(Deserialize)]
pub struct Show {
    user_code: Option<String>,
}

pub async fn show(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Query(q): Query<Show>,
) -> Response {
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let x = cross_texts::of(lang);
        let Some(typed) = q.user_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(page::render(DevicePage::new(lang, "enter")));
        };
        let refused = |error, status| {
            let mut p = DevicePage::new(lang, "enter");
            p.error = Some(error);
            p.user_code = typed;
            with_status(p, status)
        };
        let found = match device::lookup(&app.device(), typed, &addr, now).await {
            Ok(f) => f,
            Err(DeviceError::Throttled) => {
                return Ok(refused(x.err_throttled, StatusCode::TOO_MANY_REQUESTS));
            }
            Err(DeviceError::Internal(e)) => return Err(e),
            Err(_) => return Ok(refused(x.err_code, StatusCode::BAD_REQUEST)),
        };
        let Some(client) = app.db.client(&found.row.client_id).await?.filter(|c| !c.disabled) else {
            return Ok(refused(x.err_code, StatusCode::BAD_REQUEST));
        };
        // Signed in (strongly enough for this app) first; the sign-in comes back here.
        let session = cookies::session(&app, &jar, now).await?;
        let Some((session, person)) = session.filter(|(s, _)| s.acr >= client.min_acr) else {
            let jar = jar.add(cookies::device_continuation(&app, &found.user_code));
            let to = if cookies::session(&app, &jar, now).await?.is_some() {
                "/login?step_up=account"
            } else {
                "/login"
            };
            return Ok((jar, Redirect::to(to)).into_response());
        };
        let (jar, csrf) = cookies::csrf(&app, jar);
        let t = lang.texts();
        let who = pending::page_owner(&session.sid);
        let consent = device::consent_token(&app.device(), &found, &session.sid);
        let mut p = DevicePage::new(lang, "consent");
        p.consent = &consent;
        p.user_code = &found.user_code;
        p.csrf = &csrf;
        p.who = &who;
        p.person_name = &person.name;
        p.client_name = &client.name;
        p.items = found
            .row
            .scope
            .iter()
            .map(|s| page::scope_text(t, s).to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        p.kiosk = app.db.device_client(&client.id).await?.is_some();
        // Where and when the device asked: a code relayed from far away, or long ago, looks different
        // from the kiosk in front of the person.
        p.network = crate::services::scan::network(&found.row.address);
        p.same_network = !p.network.is_empty() && crate::services::scan::network(&addr) == p.network;
        let minutes = (now - found.row.created_at).max(0) / 60;
        p.issued = if minutes == 0 {
            x.device_issued_now.to_owned()
        } else {
            x.device_issued_minutes.replace("{n}", &minutes.to_string())
        };
        Ok((jar, page::render(p)).into_response())
    }
    .await;
    result.unwrap_or_else(|e| page::internal(e, "device page"))
}

#[derive(Deserialize)]
pub struct AnswerForm {
    csrf: Option<String>,
    user_code: String,
    who: Option<String>,
    consent: Option<String>,
    decision: String,
}

pub async fn answer(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<AnswerForm>,
) -> Response {
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return crate::http::page::forbidden_csrf(lang);
    }
    let result: anyhow::Result<Response> = async {
        let now = app.now();
        let x = cross_texts::of(lang);
        let again = || {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &f.user_code)
                .finish();
            Redirect::to(&format!("/device?{query}")).into_response()
        };
        let Some((session, person)) = cookies::session(&app, &jar, now).await? else {
            return Ok(again());
        };
        // An answer from a page shown to another session (someone else signed in meanwhile), or from a
        // form that is not our page, is shown again.
        if f.who.is_none() || !pending::same_owner(f.who.as_deref(), &session.sid) {
            return Ok(again());
        }
        let allow = f.decision == "allow";
        let decision = if allow {
            Answer::Approve(DeviceApproval {
                person_id: &person.id,
                session_sid: &session.sid,
                acr: session.acr,
                amr: &session.amr,
                auth_time: session.auth_time,
            })
        } else {
            Answer::Deny
        };
        let outcome = device::answer(
            &app.device(),
            &f.user_code,
            f.consent.as_deref(),
            &session.sid,
            decision,
            &addr,
            now,
        )
        .await;
        match &outcome {
            // Not answered at all: the page is shown again (with the checks GET makes), nothing audited.
            Err(DeviceError::NotShown | DeviceError::TooWeak) => return Ok(again()),
            Err(DeviceError::Throttled) => {
                let mut p = DevicePage::new(lang, "enter");
                p.error = Some(x.err_throttled);
                return Ok(with_status(p, StatusCode::TOO_MANY_REQUESTS));
            }
            _ => {}
        }
        let client_id = outcome
            .as_ref()
            .map(|row| row.client_id.clone())
            .unwrap_or_default();
        crate::services::audit::record_quietly(
            &app.db,
            app.now(),
            crate::store::audit::NewEvent {
                actor: &format!("person:{}", person.id),
                action: if allow { "device.approve" } else { "device.deny" },
                subject: &person.id,
                address: &addr,
                outcome: if outcome.is_ok() { "success" } else { "failure" },
                client_id: &client_id,
                ..Default::default()
            },
        )
        .await;
        match outcome {
            Ok(_) => Ok(page::render(DevicePage::new(
                lang,
                if allow { "approved" } else { "denied" },
            ))),
            Err(DeviceError::Internal(e)) => Err(e),
            Err(_) => {
                let mut p = DevicePage::new(lang, "enter");
                p.error = Some(x.err_code);
                Ok(with_status(p, StatusCode::BAD_REQUEST))
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| page::internal(e, "device answer"))
}

/// `GET /device/qr.svg?user_code=…`: `verification_uri_complete` as a QR code, for a device that shows
/// the SVG instead of drawing a code itself. Only the form of the code is checked (no lookup: this
/// reveals nothing about which codes exist).
pub async fn qr(State(app): State<App>, Query(q): Query<Show>) -> Response {
    let Some(code) = q.user_code.as_deref().and_then(device::normalize) else {
        return (StatusCode::BAD_REQUEST, "user_code is malformed").into_response();
    };
    let mut uri = app.device().settings.verification_uri;
    uri.query_pairs_mut()
        .append_pair("user_code", &device::display(&code));
    match crate::http::qr::svg(uri.as_str()) {
        Some(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "no QR code").into_response(),
    }
}
