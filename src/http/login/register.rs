//! Self-registration (when the deployment allows it), phone first: `/register/code` sends a code to the
//! phone, `/register` takes the code with the ID number, name and password. The answers are the same
//! whether or not the phone or the ID number already has an account (its owner is told by SMS);
//! only typing mistakes are pointed out.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::messages::Msg;
use crate::http::{cookies, page};
use crate::services::signup::{self, CompleteError, Details, StartError};

/// What the registration page shows.
#[derive(Default)]
struct View<'a> {
    attempt: Option<&'a str>,
    id_number: &'a str,
    name: &'a str,
    phone: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

fn render(app: &App, jar: CookieJar, lang: Lang, view: View<'_>, status: StatusCode) -> Response {
    let (jar, csrf) = cookies::csrf(app, jar);
    let html = page::render(page::RegisterPage {
        t: lang.texts(),
        csrf: &csrf,
        attempt: view.attempt,
        id_number: view.id_number,
        name: view.name,
        phone: view.phone,
        error: view.error,
        notice: view.notice,
    });
    (status, jar, html).into_response()
}

fn not_offered(lang: Lang) -> Response {
    page::fail(lang, StatusCode::NOT_FOUND, Msg::RegistrationOff)
}

pub async fn show(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    if !app.config.self_registration {
        return not_offered(lang);
    }
    render(&app, jar, lang, View::default(), StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SendCode {
    csrf: Option<String>,
    phone: String,
}

fn phone_message(lang: Lang, e: &crate::identity::PhoneError) -> String {
    match lang {
        Lang::Zh => e.message_zh().into(),
        Lang::En => e.to_string(),
    }
}

/// Step 1: a code to the phone (or, for a phone with an account, an SMS saying so); the same page
/// either way.
pub async fn send_code(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<SendCode>,
) -> Response {
    if !app.config.self_registration {
        return not_offered(lang);
    }
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return crate::http::page::forbidden_csrf(lang);
    }
    let t = lang.texts();
    // The CSRF token checked above stands for this browser: the attempt completes only here.
    let browser = f.csrf.as_deref().unwrap_or_default();
    match signup::start(&app.signup(), &f.phone, browser, &addr, app.now()).await {
        Ok(Ok(attempt)) => {
            let view = View {
                attempt: Some(&attempt),
                phone: f.phone.trim(),
                notice: Some(t.register_code_sent),
                ..View::default()
            };
            render(&app, jar, lang, view, StatusCode::OK)
        }
        Ok(Err(e)) => {
            let (status, message) = match &e {
                StartError::Phone(e) => (StatusCode::UNPROCESSABLE_ENTITY, phone_message(lang, e)),
                StartError::Throttled => (StatusCode::TOO_MANY_REQUESTS, t.err_sms_throttled.into()),
            };
            let view = View {
                phone: &f.phone,
                error: Some(&message),
                ..View::default()
            };
            render(&app, jar, lang, view, status)
        }
        Err(e) => page::internal(e, "registration code failed"),
    }
}

#[derive(Deserialize)]
pub struct Submit {
    csrf: Option<String>,
    attempt: String,
    phone: String,
    code: String,
    id_number: String,
    name: String,
    password: String,
}

/// The message for a refused step 2, in the page's language.
fn message(lang: Lang, e: &CompleteError) -> String {
    let t = lang.texts();
    let zh = lang == Lang::Zh;
    match e {
        CompleteError::IdNumber(e) if zh => e.message_zh().into(),
        CompleteError::IdNumber(e) => e.to_string(),
        CompleteError::Phone(e) => phone_message(lang, e),
        CompleteError::Name if zh => "请填写姓名（不超过 100 个字）。".into(),
        CompleteError::Name => "A name of 1 to 100 characters is required.".into(),
        CompleteError::Password if zh => "密码长度需为 8 到 1024 个字符。".into(),
        CompleteError::Password => "The password needs 8 to 1024 characters.".into(),
        CompleteError::CommonPassword if zh => "该密码过于常见，请换一个。".into(),
        CompleteError::CommonPassword => {
            "This password is too common (it appears in lists of breached passwords); choose another.".into()
        }
        CompleteError::Throttled => t.err_throttled.into(),
        CompleteError::WrongCode => t.err_code.into(),
        CompleteError::Expired => t.err_code_expired.into(),
    }
}

/// Step 2: the code and the details. "Done" is the same page whether an account was created or the ID
/// number had one already.
pub async fn submit(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<Submit>,
) -> Response {
    if !app.config.self_registration {
        return not_offered(lang);
    }
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return crate::http::page::forbidden_csrf(lang);
    }
    let details = Details {
        attempt: &f.attempt,
        browser: f.csrf.as_deref().unwrap_or_default(),
        phone: &f.phone,
        code: &f.code,
        id_number: &f.id_number,
        name: &f.name,
        password: &f.password,
    };
    let t = lang.texts();
    match signup::complete(&app.signup(), details, &addr, app.now()).await {
        Ok(Ok(())) => page::render(page::MessagePage {
            t,
            title: t.register_title,
            text: t.registered,
            link: Some(("/login", t.sign_in)),
        }),
        Ok(Err(e)) => {
            let text = message(lang, &e);
            let (status, attempt) = match e {
                // Start again from the phone.
                CompleteError::Expired => (StatusCode::UNAUTHORIZED, None),
                CompleteError::WrongCode => (StatusCode::UNAUTHORIZED, Some(f.attempt.as_str())),
                CompleteError::Throttled => (StatusCode::TOO_MANY_REQUESTS, Some(f.attempt.as_str())),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, Some(f.attempt.as_str())),
            };
            let view = View {
                attempt,
                id_number: &f.id_number,
                name: &f.name,
                phone: &f.phone,
                error: Some(&text),
                ..View::default()
            };
            render(&app, jar, lang, view, status)
        }
        Err(e) => page::internal(e, "registration failed"),
    }
}
