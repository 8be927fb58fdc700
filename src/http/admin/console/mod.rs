//! The admin console: server-rendered pages over the same operations as the API (the same role checks
//! and audit events), for a person with an admin role signed in with two factors.

mod auth;
mod orgs;

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
use auth::{admin, form_admin};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/persons", get(persons).post(search))
        .route("/admin/persons/{id}/{action}", post(person_action))
        .route("/admin/apps", get(apps).post(create_app))
        .route("/admin/apps/{id}/rotate", post(rotate))
        .route("/admin/audit", get(audit))
        .merge(auth::router())
        .merge(orgs::router())
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
    skip: &'static str,
    console: &'static str,
    sign_out: &'static str,
    sign_in_expired: &'static str,
    no_role: &'static str,
    not_found: &'static str,
    orgs: &'static str,
    credit_code: &'static str,
    find_org: &'static str,
    representatives: &'static str,
    none: &'static str,
    person_ref: &'static str,
    person_ref_hint: &'static str,
    role: &'static str,
    matters: &'static str,
    matters_hint: &'static str,
    valid_from: &'static str,
    valid_until: &'static str,
    valid_until_hint: &'static str,
    appoint: &'static str,
    revoke: &'static str,
    actions_for: &'static str,
    subject: &'static str,
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
    skip: "跳到主要内容",
    console: "管理控制台",
    sign_out: "退出管理控制台",
    sign_in_expired: "登录已过期或已被使用，请重新登录。",
    no_role: "您没有管理权限。",
    not_found: "未找到。",
    orgs: "企业代理",
    credit_code: "统一社会信用代码",
    find_org: "查找企业",
    representatives: "代理人",
    none: "无",
    person_ref: "身份证号或手机号",
    person_ref_hint: "被委托人的居民身份证号码或已验证的手机号",
    role: "身份",
    matters: "事项",
    matters_hint: "填写 all 表示全部事项，或以逗号分隔的事项编码",
    valid_from: "生效日期",
    valid_until: "失效日期",
    valid_until_hint: "留空表示长期有效",
    appoint: "委托",
    revoke: "撤销",
    actions_for: "操作：",
    subject: "对象",
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
    skip: "Skip to main content",
    console: "Admin console",
    sign_out: "Sign out of the console",
    sign_in_expired: "This sign-in has expired or was already used: please sign in again.",
    no_role: "You have no administrative role.",
    not_found: "Not found.",
    orgs: "Representation",
    credit_code: "Unified social credit code",
    find_org: "Find organisation",
    representatives: "Representatives",
    none: "None",
    person_ref: "ID number or phone",
    person_ref_hint: "The representative's resident ID number or verified mobile phone number",
    role: "Role",
    matters: "Matters",
    matters_hint: "all for every matter, or matter codes separated by commas",
    valid_from: "Valid from",
    valid_until: "Valid until",
    valid_until_hint: "Leave empty for no end date",
    appoint: "Appoint",
    revoke: "Revoke",
    actions_for: "Actions for ",
    subject: "Subject",
};

pub struct PersonView {
    id: String,
    name: String,
    id_masked: String,
    level: i64,
    status: String,
}

/// An organisation and its representatives, as the representation page shows them.
pub struct OrgView {
    id: String,
    name: String,
    credit_code: String,
    reps: Vec<RepView>,
}

pub struct RepView {
    id: String,
    person_name: String,
    id_masked: String,
    role: &'static str,
    matters: String,
    from: String,
    until: String,
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
    events: Vec<(i64, String, String, String, String, String)>,
    code: &'a str,
    org: Option<OrgView>,
    rep_roles: Vec<(&'static str, &'static str)>,
    nav: Vec<(&'static str, &'static str, bool)>,
}

fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::Zh => &ZH,
        Lang::En => &EN,
    }
}

fn role_names(lang: Lang, roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| match (r, lang) {
            (Role::SuperAdmin, Lang::Zh) => "超级管理员".to_owned(),
            (Role::SuperAdmin, Lang::En) => "super admin".to_owned(),
            (Role::DepartmentAdmin(d), Lang::Zh) => format!("部门管理员（{d}）"),
            (Role::DepartmentAdmin(d), Lang::En) => format!("department admin ({d})"),
            (Role::CounterClerk, Lang::Zh) => "窗口核验员".to_owned(),
            (Role::CounterClerk, Lang::En) => "counter clerk".to_owned(),
            (Role::Auditor, Lang::Zh) => "审计员".to_owned(),
            (Role::Auditor, Lang::En) => "auditor".to_owned(),
            (Role::LicenceLibrary, _) => "licence library".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
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
    events: Vec<(i64, String, String, String, String, String)>,
    code: &'a str,
    org: Option<OrgView>,
}

fn render(app: &App, jar: CookieJar, lang: Lang, admin: &Admin, v: View<'_>, status: StatusCode) -> Response {
    let (jar, csrf) = cookies::csrf(app, jar);
    let t = lang.texts();
    let l = labels(lang);
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
    let rep_roles = ["agent", "manager", "legal_representative"]
        .map(|r| (r, page::role_text(t, r)))
        .to_vec();
    let nav = [
        ("persons", "/admin/persons", l.persons),
        ("orgs", "/admin/orgs", l.orgs),
        ("apps", "/admin/apps", l.apps),
        ("audit", "/admin/audit", l.audit),
    ]
    .map(|(section, href, label)| (href, label, section == v.section))
    .to_vec();
    let mut res = page::render(ConsolePage {
        t,
        l,
        title: v.title,
        section: v.section,
        csrf: &csrf,
        error: v.error,
        notice: v.notice,
        secret: v.secret,
        roles: role_names(lang, &admin.roles),
        persons: v.persons,
        actions,
        apps: v.apps,
        events: v.events,
        code: v.code,
        org: v.org,
        rep_roles,
        nav,
    });
    *res.status_mut() = status;
    // Admin pages are never cached (a shown secret must not come back from a cache).
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    (jar, res).into_response()
}

#[derive(Deserialize, Default)]
struct HomeQuery {
    /// `signed-out` when RP-initiated logout brings the browser back.
    state: Option<String>,
}

async fn home(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<HomeQuery>) -> Response {
    if q.state.as_deref() == Some("signed-out") {
        let t = lang.texts();
        let l = labels(lang);
        return page::render(page::MessagePage {
            t,
            title: t.logout_title,
            text: t.logged_out,
            link: Some(("/admin", l.console)),
        });
    }
    let admin = match admin(&app, &jar, lang, "/admin").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let v = View {
        title: labels(lang).console,
        section: "home",
        ..View::default()
    };
    render(&app, jar, lang, &admin, v, StatusCode::OK)
}

#[derive(Deserialize, Default)]
struct PersonQuery {
    /// Internal person id (never the ID number: URLs end up in logs).
    person: Option<String>,
    notice: Option<String>,
}

fn status_text(lang: Lang, status: &str) -> String {
    match (lang, status) {
        (Lang::Zh, "active") => "正常".to_owned(),
        (Lang::Zh, "locked") => "已锁定".to_owned(),
        (Lang::Zh, "disabled") => "已停用".to_owned(),
        (Lang::En, "active") => "active".to_owned(),
        (Lang::En, "locked") => "locked".to_owned(),
        (Lang::En, "disabled") => "disabled".to_owned(),
        (_, other) => other.to_owned(),
    }
}

fn person_view(lang: Lang, p: &serde_json::Value) -> PersonView {
    PersonView {
        id: p["id"].as_str().unwrap_or("").to_owned(),
        name: p["name"].as_str().unwrap_or("").to_owned(),
        id_masked: p["id_number_masked"].as_str().unwrap_or("").to_owned(),
        level: p["real_name_level"].as_i64().unwrap_or(1),
        status: status_text(lang, p["status"].as_str().unwrap_or("")),
    }
}

async fn persons(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    uri: axum::http::Uri,
    Query(q): Query<PersonQuery>,
) -> Response {
    let admin = match admin(&app, &jar, lang, &uri.to_string()).await {
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
        v.persons = vec![person_view(lang, &manage::person_json(&app, &p))];
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
    let l = labels(lang);
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
                    title: l.persons,
                    section: "persons",
                    error: Some(l.not_found),
                    ..View::default()
                };
                render(&app, jar, lang, &admin, v, StatusCode::NOT_FOUND)
            }
        },
        Err(p) => {
            let v = View {
                title: l.persons,
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
        .filter(|c| admin.can_manage_client(c) && !crate::services::console::is_console(c))
        .map(|c| (c.name, c.id, c.department))
        .collect()
}

/// A new client secret travels from the form post to the page that shows it once in a short-lived,
/// encrypted cookie (POST/redirect/GET): reloading the page neither shows it again nor registers twice.
const SECRET_COOKIE: &str = "yunid_console_secret";
const SECRET_AAD: &[u8] = b"yunid/console/secret-once";

fn secret_once(app: &App, jar: CookieJar, client_id: &str, secret: &str) -> Response {
    let sealed = app.secrets.encrypt(
        &serde_json::json!([client_id, secret, app.now()]).to_string(),
        SECRET_AAD,
    );
    match sealed {
        Ok(sealed) => {
            let c = auth::cookie(app, SECRET_COOKIE, sealed);
            (jar.add(c), Redirect::to("/admin/apps")).into_response()
        }
        Err(e) => problem_page(Lang::Zh, Problem::internal(e)),
    }
}

/// The secret to show now, if one is waiting (the cookie goes at once).
fn take_secret(app: &App, jar: CookieJar) -> (CookieJar, Option<(String, String)>) {
    let Some(c) = jar.get(&auth::cookie_name(app, SECRET_COOKIE)) else {
        return (jar, None);
    };
    let shown = app
        .secrets
        .decrypt(c.value(), SECRET_AAD)
        .ok()
        .and_then(|s| serde_json::from_str::<(String, String, i64)>(&s).ok())
        // Only moments after the form post: a cookie left behind shows nothing later.
        .filter(|(_, _, at)| app.now() - at <= 120)
        .map(|(id, secret, _)| (id, secret));
    (jar.add(auth::removal(app, SECRET_COOKIE)), shown)
}

async fn apps(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let admin = match admin(&app, &jar, lang, "/admin/apps").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (jar, shown) = take_secret(&app, jar);
    let list = app_list(&app, &admin).await;
    let v = View {
        title: labels(lang).apps,
        section: "apps",
        secret: shown.as_ref().map(|(id, s)| (id.as_str(), s.as_str())),
        apps: list,
        ..View::default()
    };
    render(&app, jar, lang, &admin, v, StatusCode::OK)
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
            secret_once(&app, jar, &client.id, &secret.unwrap_or_default())
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
        Ok(secret) => secret_once(&app, jar, &id, &secret),
        Err(p) => problem_page(lang, p),
    }
}

/// A time as shown in the console: China Standard Time, which has no daylight saving.
pub fn local_time(at: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp(at + 8 * 3600, 0)
        .map(|d| d.format(format).to_string())
        .unwrap_or_default()
}

async fn audit(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let admin = match admin(&app, &jar, lang, "/admin/audit").await {
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
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                    (
                        e["seq"].as_i64().unwrap_or(0),
                        local_time(e["at"].as_i64().unwrap_or(0), "%Y-%m-%d %H:%M:%S"),
                        s("actor"),
                        s("action"),
                        s("subject"),
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
