//! Self-registration (when the deployment allows it): resident ID number, name, phone, password;
//! the person starts at real-name level 1 with an unverified phone. Each refusal says which check failed.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::App;
use crate::http::i18n::Lang;
use crate::http::{cookies, page};
use crate::services::registry::{self, NewPerson, PersonError};

pub async fn show(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    if !app.config.self_registration {
        return page::error(StatusCode::NOT_FOUND, "self-registration is not offered here");
    }
    let (jar, csrf) = cookies::csrf(&app, jar);
    let html = page::render(page::RegisterPage {
        t: lang.texts(),
        csrf: &csrf,
        id_number: "",
        name: "",
        phone: "",
        error: None,
    });
    (jar, html).into_response()
}

#[derive(Deserialize)]
pub struct Submit {
    csrf: Option<String>,
    id_number: String,
    name: String,
    phone: String,
    password: String,
}

/// The message a person sees for a refused registration: Chinese first, then English.
fn message(e: &PersonError) -> String {
    match e {
        PersonError::IdNumber(e) => format!("{} {}", e.message_zh(), e),
        PersonError::Phone(e) => format!("{} {}", e.message_zh(), e),
        PersonError::Password => format!("密码长度不符合要求。{e}"),
        PersonError::Name => format!("请填写姓名。{e}"),
        PersonError::CommonPassword => format!("该密码过于常见，请换一个。{e}"),
        PersonError::Conflict => format!("该身份证号码或手机号码已注册，请直接登录。{e}"),
        PersonError::Internal(_) => "系统错误，请稍后再试。Internal error.".into(),
    }
}

pub async fn submit(State(app): State<App>, lang: Lang, jar: CookieJar, Form(f): Form<Submit>) -> Response {
    if !app.config.self_registration {
        return page::error(StatusCode::NOT_FOUND, "self-registration is not offered here");
    }
    if !cookies::csrf_ok(&app, &jar, f.csrf.as_deref()) {
        return super::forbidden_csrf(lang);
    }
    let outcome = registry::add_person(
        &app,
        NewPerson {
            id_number: f.id_number.clone(),
            name: f.name.clone(),
            phone: Some(f.phone.clone()),
            phone_verified: false,
            password: Some(f.password),
        },
    )
    .await;
    match outcome {
        Ok(_) => {
            let t = lang.texts();
            page::render(page::MessagePage {
                t,
                title: t.register_title,
                text: t.registered,
                link: Some(("/login", t.sign_in)),
            })
        }
        // 503 while the database is unreachable, else 500; the form is not worth showing again.
        Err(PersonError::Internal(inner)) => page::internal(inner, "registration failed"),
        Err(e) => {
            let status = match e {
                PersonError::Conflict => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let (jar, csrf) = cookies::csrf(&app, jar);
            let html = page::render(page::RegisterPage {
                t: lang.texts(),
                csrf: &csrf,
                id_number: &f.id_number,
                name: &f.name,
                phone: &f.phone,
                error: Some(&message(&e)),
            });
            (status, jar, html).into_response()
        }
    }
}
