//! The admin console: server-rendered pages over the same operations as the API (the same role checks
//! and audit events), for a person with an admin role signed in with two factors.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::Problem;
use super::manage::{self, AuditQuery, Ctx};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::{Lang, Texts};
use crate::http::{cookies, page};
use crate::services::admin::{Admin, Role};
use crate::services::registry::{self, NewClient};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/persons", get(persons).post(search))
        .route("/admin/persons/{id}/{action}", post(person_action))
        .route("/admin/apps", get(apps).post(create_app))
        .route("/admin/apps/{id}/rotate", post(rotate))
        .route("/admin/audit", get(audit))
}

/// Console words (the shared page texts cover the rest).
pub struct Labels {
    persons: &'static str,
    apps: &'static str,
    audit: &'static str,
    account: &'static str,
    roles: &'static str,
    search: &'static str,
    status: &'static str,
    app_name: &'static str,
    department: &'static str,
    rotate: &'static str,
    new_app: &'static str,
    create: &'static str,
    secret_once: &'static str,
    time: &'static str,
    actor: &'static str,
    action: &'static str,
    outcome: &'static str,
    needs_2fa: &'static str,
    done: &'static str,
}

static ZH: Labels = Labels {
    persons: "人员",
    apps: "应用",
    audit: "审计",
    account: "我的账号",
    roles: "角色",
    search: "查找",
    status: "状态",
    app_name: "应用名称",
    department: "部门",
    rotate: "重置密钥",
    new_app: "登记新应用",
    create: "登记",
    secret_once: "密钥只显示这一次，请立即妥善保存。",
    time: "时间",
    actor: "操作者",
    action: "操作",
    outcome: "结果",
    needs_2fa: "管理操作需要两步验证登录。",
    done: "已完成。",
};

static EN: Labels = Labels {
    persons: "Persons",
    apps: "Apps",
    audit: "Audit",
    account: "My account",
    roles: "Roles",
    search: "Search",
    status: "Status",
    app_name: "App name",
    department: "Department",
    rotate: "Rotate secret",
    new_app: "Register an app",
    create: "Register",
    secret_once: "The secret is shown only this once: store it now.",
    time: "Time",
    actor: "Actor",
    action: "Action",
    outcome: "Outcome",
    needs_2fa: "Administration needs a two-factor sign-in.",
    done: "Done.",
};

pub struct PersonView {
    id: String,
    name: String,
    id_masked: String,
    level: i64,
    status: String,
}

#[derive(askama::Template)]
#[template(path = "admin.html")]
struct ConsolePage<'a> {
    t: &'static Texts,
    l: &'static Labels,
    title: &'a str,
    section: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    secret: Option<(&'a str, &'a str)>,
    roles: String,
    persons: Vec<PersonView>,
    actions: Vec<(&'static str, &'static str)>,
    apps: Vec<(String, String, String)>,
    events: Vec<(i64, String, String, String, String)>,
}

fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::Zh => &ZH,
        Lang::En => &EN,
    }
}

/// The signed-in admin, or the page to show instead.
async fn admin(app: &App, jar: &CookieJar, lang: Lang) -> Result<Admin, Response> {
    let session = cookies::session(app, jar, app.now()).await.map_err(|e| {
        tracing::error!(error = %e, "console");
        page::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    let Some((session, person)) = session else {
        return Err(Redirect::to("/login").into_response());
    };
    if session.acr < 2 {
        return Err(page::error_in(
            lang,
            StatusCode::FORBIDDEN,
            labels(lang).needs_2fa,
        ));
    }
    let roles: Vec<Role> = app
        .db
        .admin_roles_of(&person.id)
        .await
        .map_err(|_| page::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?
        .iter()
        .filter_map(|(r, d)| Role::parse(r, d))
        .collect();
    if roles.is_empty() {
        return Err(page::error_in(
            lang,
            StatusCode::FORBIDDEN,
            "no administrative role",
        ));
    }
    Ok(Admin {
        actor: format!("person:{}", person.id),
        roles,
    })
}

/// A form post from the console: the CSRF token first, then the signed-in admin.
async fn form_admin(app: &App, jar: &CookieJar, lang: Lang, csrf: Option<&str>) -> Result<Admin, Response> {
    if !cookies::csrf_ok(app, jar, csrf) {
        return Err(page::error_in(lang, StatusCode::FORBIDDEN, "invalid form token"));
    }
    admin(app, jar, lang).await
}

#[derive(Default)]
struct View<'a> {
    title: &'a str,
    section: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    secret: Option<(&'a str, &'a str)>,
    persons: Vec<PersonView>,
    apps: Vec<(String, String, String)>,
    events: Vec<(i64, String, String, String, String)>,
}

fn render(app: &App, jar: CookieJar, lang: Lang, admin: &Admin, v: View<'_>, status: StatusCode) -> Response {
    let (jar, csrf) = cookies::csrf(app, jar);
    let t = lang.texts();
    let actions = match lang {
        Lang::Zh => vec![
            ("unlock", "解锁"),
            ("verify", "现场核验身份证"),
            ("end-sessions", "结束登录"),
            ("lock", "锁定"),
        ],
        Lang::En => vec![
            ("unlock", "Unlock"),
            ("verify", "Verify ID card at counter"),
            ("end-sessions", "End sessions"),
            ("lock", "Lock"),
        ],
    };
    let mut res = page::render(ConsolePage {
        t,
        l: labels(lang),
        title: v.title,
        section: v.section,
        csrf: &csrf,
        error: v.error,
        notice: v.notice,
        secret: v.secret,
        roles: format!("{:?}", admin.roles),
        persons: v.persons,
        actions,
        apps: v.apps,
        events: v.events,
    });
    *res.status_mut() = status;
    (jar, res).into_response()
}

async fn home(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let admin = match admin(&app, &jar, lang).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let title = match lang {
        Lang::Zh => "管理控制台",
        Lang::En => "Admin console",
    };
    render(
        &app,
        jar,
        lang,
        &admin,
        View {
            title,
            section: "home",
            ..View::default()
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize, Default)]
struct PersonQuery {
    /// Internal person id (never the ID number: URLs end up in logs).
    person: Option<String>,
    notice: Option<String>,
}

fn person_view(p: &serde_json::Value) -> PersonView {
    PersonView {
        id: p["id"].as_str().unwrap_or("").to_owned(),
        name: p["name"].as_str().unwrap_or("").to_owned(),
        id_masked: p["id_number_masked"].as_str().unwrap_or("").to_owned(),
        level: p["real_name_level"].as_i64().unwrap_or(1),
        status: p["status"].as_str().unwrap_or("").to_owned(),
    }
}

async fn persons(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    Query(q): Query<PersonQuery>,
) -> Response {
    let admin = match admin(&app, &jar, lang).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let l = labels(lang);
    let mut v = View {
        title: l.persons,
        section: "persons",
        ..View::default()
    };
    if q.notice.is_some() {
        v.notice = Some(l.done);
    }
    if !admin.can_look_up_persons() {
        return page::error_in(lang, StatusCode::FORBIDDEN, "not allowed: person.search");
    }
    if let Some(id) = q.person.as_deref()
        && let Ok(Some(p)) = app.db.person(id).await
    {
        v.persons = vec![person_view(&manage::person_json(&app, &p))];
    }
    render(&app, jar, lang, &admin, v, StatusCode::OK)
}

#[derive(Deserialize)]
struct SearchForm {
    csrf: Option<String>,
    id_number: String,
}

/// The ID number travels in the form body and is not shown back.
async fn search(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(f): Form<SearchForm>,
) -> Response {
    let admin = match form_admin(&app, &jar, lang, f.csrf.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ctx = Ctx {
        app: &app,
        admin: &admin,
        address: &address,
    };
    match manage::find_person(&ctx, Some(f.id_number.trim()), None).await {
        Ok(list) => match list.first().and_then(|p| p["id"].as_str()) {
            Some(id) => {
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("person", id)
                    .finish();
                Redirect::to(&format!("/admin/persons?{query}")).into_response()
            }
            None => {
                let v = View {
                    title: labels(lang).persons,
                    section: "persons",
                    error: Some("—"),
                    ..View::default()
                };
                render(&app, jar, lang, &admin, v, StatusCode::NOT_FOUND)
            }
        },
        Err(p) => {
            let v = View {
                title: labels(lang).persons,
                section: "persons",
                error: Some(&p.detail),
                ..View::default()
            };
            render(&app, jar, lang, &admin, v, p.status)
        }
    }
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: Option<String>,
}

async fn person_action(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let admin = match form_admin(&app, &jar, lang, f.csrf.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ctx = Ctx {
        app: &app,
        admin: &admin,
        address: &address,
    };
    match manage::act_on_person(&ctx, &id, &action, None).await {
        Ok(_) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("person", &id)
                .append_pair("notice", "done")
                .finish();
            Redirect::to(&format!("/admin/persons?{query}")).into_response()
        }
        Err(p) => problem_page(lang, p),
    }
}

fn problem_page(lang: Lang, p: Problem) -> Response {
    page::error_in(lang, p.status, &p.detail)
}

async fn app_list(app: &App, admin: &Admin) -> Vec<(String, String, String)> {
    app.db
        .all_clients()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| admin.can_manage_client(c))
        .map(|c| (c.name, c.id, c.department))
        .collect()
}

async fn apps(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let admin = match admin(&app, &jar, lang).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let list = app_list(&app, &admin).await;
    render(
        &app,
        jar,
        lang,
        &admin,
        View {
            title: labels(lang).apps,
            section: "apps",
            apps: list,
            ..View::default()
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct NewAppForm {
    csrf: Option<String>,
    name: String,
    #[serde(default)]
    department: String,
    redirect_uri: String,
}

async fn create_app(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(f): Form<NewAppForm>,
) -> Response {
    let admin = match form_admin(&app, &jar, lang, f.csrf.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ctx = Ctx {
        app: &app,
        admin: &admin,
        address: &address,
    };
    if !admin.can_create_client_in(&f.department) {
        let _ = ctx.audit_forbidden("client.create").await;
        return page::error_in(lang, StatusCode::FORBIDDEN, "not allowed: client.create");
    }
    let new = NewClient {
        name: f.name,
        redirect_uris: vec![f.redirect_uri],
        department: f.department,
        ..NewClient::default()
    };
    match registry::add_client(&app, new).await {
        Ok((client, secret)) => {
            let _ = ctx.audit_success("client.create", &client.id).await;
            let secret = secret.unwrap_or_default();
            let list = app_list(&app, &admin).await;
            let v = View {
                title: labels(lang).apps,
                section: "apps",
                secret: Some((&client.id, &secret)),
                apps: list,
                ..View::default()
            };
            render(&app, jar, lang, &admin, v, StatusCode::CREATED)
        }
        Err(e) => {
            let message = e.to_string();
            let list = app_list(&app, &admin).await;
            let v = View {
                title: labels(lang).apps,
                section: "apps",
                error: Some(&message),
                apps: list,
                ..View::default()
            };
            render(&app, jar, lang, &admin, v, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn rotate(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let admin = match form_admin(&app, &jar, lang, f.csrf.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ctx = Ctx {
        app: &app,
        admin: &admin,
        address: &address,
    };
    match manage::rotate_client_secret(&ctx, &id).await {
        Ok(secret) => {
            let list = app_list(&app, &admin).await;
            let v = View {
                title: labels(lang).apps,
                section: "apps",
                secret: Some((&id, &secret)),
                apps: list,
                ..View::default()
            };
            render(&app, jar, lang, &admin, v, StatusCode::OK)
        }
        Err(p) => problem_page(lang, p),
    }
}

async fn audit(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let admin = match admin(&app, &jar, lang).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = AuditQuery {
        limit: Some(200),
        ..AuditQuery::default()
    };
    match manage::audit_events(&app, &admin, &q).await {
        Ok(events) => {
            let events = events
                .iter()
                .rev()
                .map(|e| {
                    let at = e["at"].as_i64().unwrap_or(0);
                    let when = chrono::DateTime::from_timestamp(at + 8 * 3600, 0)
                        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default();
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                    (
                        e["seq"].as_i64().unwrap_or(0),
                        when,
                        s("actor"),
                        s("action"),
                        s("outcome"),
                    )
                })
                .collect();
            let v = View {
                title: labels(lang).audit,
                section: "audit",
                events,
                ..View::default()
            };
            render(&app, jar, lang, &admin, v, StatusCode::OK)
        }
        Err(p) => problem_page(lang, p),
    }
}
