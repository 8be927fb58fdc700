//! The admin console: server-rendered pages over the same operations as the API (the same role checks
//! and audit events), for a person with an admin role. The console is an OIDC client of yunid itself
//! (`auth`): admins sign in through `/authorize` with two factors or a passkey, like at any app.

mod apps;
mod auth;
mod labels;
mod orgs;
mod persons;
mod problem_text;
mod proofing;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::Problem;
use super::{ctx, manage};
use crate::app::App;
use crate::http::i18n::{Lang, Texts};
use crate::http::{cookies, page};
use crate::services::admin::Admin;
use auth::admin;
use labels::{Labels, labels, role_names};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/audit", get(audit))
        .merge(auth::router())
        .merge(persons::router())
        .merge(apps::router())
        .merge(orgs::router())
        .merge(proofing::router())
}

pub struct PersonView {
    id: String,
    name: String,
    id_masked: String,
    level: i64,
    status: String,
    /// The version the page shows (a phone change is based on it).
    version: i64,
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
    temporary_password: Option<&'a str>,
    roles: String,
    persons: Vec<PersonView>,
    actions: Vec<(&'static str, &'static str)>,
    apps: Vec<(String, String, String)>,
    events: Vec<(i64, String, String, String, String, String)>,
    /// The link to the next, older page of the audit list.
    older: Option<String>,
    code: &'a str,
    org: Option<OrgView>,
    rep_roles: Vec<(&'static str, &'static str)>,
    nav: Vec<(&'static str, &'static str, bool)>,
}

#[derive(Default)]
struct View<'a> {
    title: &'a str,
    section: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    secret: Option<(&'a str, &'a str)>,
    /// A counter reset's temporary password, shown once.
    temporary_password: Option<&'a str>,
    persons: Vec<PersonView>,
    apps: Vec<(String, String, String)>,
    events: Vec<(i64, String, String, String, String, String)>,
    older: Option<String>,
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
    // Only the sections this admin's roles open.
    let departments = !admin.departments().is_empty();
    let nav = [
        (
            "persons",
            "/admin/persons",
            l.persons,
            admin.can_look_up_persons(),
        ),
        ("orgs", "/admin/orgs", l.orgs, admin.can_manage_representations()),
        ("apps", "/admin/apps", l.apps, admin.is_super() || departments),
        (
            "audit",
            "/admin/audit",
            l.audit,
            admin.can_read_all_audit() || departments,
        ),
    ]
    .into_iter()
    .filter(|(_, _, _, open)| *open)
    .map(|(section, href, label, _)| (href, label, section == v.section))
    .collect();
    let mut res = page::render(ConsolePage {
        t,
        l,
        title: v.title,
        section: v.section,
        csrf: &csrf,
        error: v.error,
        notice: v.notice,
        secret: v.secret,
        temporary_password: v.temporary_password,
        roles: role_names(lang, &admin.roles),
        persons: v.persons,
        actions,
        apps: v.apps,
        events: v.events,
        older: v.older,
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

/// A console form post from a signed-in admin whose form token checked out, and where it came from.
struct Posted {
    admin: Admin,
    address: String,
}

impl Posted {
    async fn check(
        app: &App,
        jar: &CookieJar,
        lang: Lang,
        csrf: Option<&str>,
        address: String,
    ) -> Result<Self, Response> {
        let admin = auth::form_admin(app, jar, lang, csrf).await?;
        Ok(Self { admin, address })
    }

    fn ctx<'a>(&'a self, app: &'a App) -> ctx::Ctx<'a> {
        ctx::Ctx {
            app,
            admin: &self.admin,
            address: &self.address,
        }
    }
}

fn problem_page(lang: Lang, p: Problem) -> Response {
    page::error_in(lang, p.status, &problem_text::detail(lang, p.status, &p.detail))
}

/// A time as shown in the console: China Standard Time, which has no daylight saving.
pub fn local_time(at: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp(at + 8 * 3600, 0)
        .map(|d| d.format(format).to_string())
        .unwrap_or_default()
}

/// How many events one page of the console's audit list shows.
const AUDIT_PAGE: usize = 200;

#[derive(Deserialize, Default)]
struct AuditPageQuery {
    /// Show the events before this sequence number (the next, older page).
    before: Option<i64>,
}

/// The audit trail, newest first, a page at a time; a link leads to the older events.
async fn audit(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    Query(q): Query<AuditPageQuery>,
) -> Response {
    let admin = match admin(&app, &jar, lang, "/admin/audit").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match manage::newest_audit_events(&app, &admin, q.before, AUDIT_PAGE).await {
        Ok((events, next)) => {
            let events = events
                .into_iter()
                .map(|e| {
                    (
                        e.seq,
                        local_time(e.at, "%Y-%m-%d %H:%M:%S"),
                        e.actor,
                        e.action,
                        e.subject,
                        e.outcome,
                    )
                })
                .collect();
            let older = next.map(|before| {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("before", &before.to_string())
                    .finish();
                format!("/admin/audit?{query}")
            });
            let v = View {
                title: labels(lang).audit,
                section: "audit",
                events,
                older,
                ..View::default()
            };
            render(&app, jar, lang, &admin, v, StatusCode::OK)
        }
        Err(p) => problem_page(lang, p),
    }
}
