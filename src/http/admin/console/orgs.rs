//! Representation in the console: an organisation (found by its unified social credit code), its
//! representatives, appointing one and revoking one, through `services::identity`; every change audited.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::auth::admin;
use super::ctx::{self, Ctx};
use super::{OrgView, Posted, RepView, View, labels, local_time, render};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::page;
use crate::identity::Phone;
use crate::services::admin::Admin;
use crate::services::identity::{self, IdentityError, NewRepresentation};
use crate::store::audit::NewEvent;
use crate::store::orgs::{Matters, Organisation, Role};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/orgs", get(org_page))
        .route("/admin/orgs/{org}/representatives", post(appoint))
        .route("/admin/orgs/{org}/representatives/{rep}/revoke", post(revoke))
}

#[derive(Deserialize, Default)]
struct OrgQuery {
    code: Option<String>,
    notice: Option<String>,
}

fn status_of(e: &IdentityError) -> StatusCode {
    match e {
        IdentityError::CreditCode(_) | IdentityError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        IdentityError::NotFound(_) => StatusCode::NOT_FOUND,
        IdentityError::Forbidden(_) => StatusCode::FORBIDDEN,
        IdentityError::Conflict => StatusCode::CONFLICT,
        IdentityError::Internal(e) => {
            tracing::error!(error = %e, "console representation");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn message(e: &IdentityError) -> String {
    match e {
        IdentityError::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    }
}

/// The organisation with this credit code and its representatives.
async fn org_view(app: &App, lang: Lang, code: &str) -> Result<OrgView, IdentityError> {
    let code = identity::credit_code(&app.db, code).await?;
    let org = app
        .db
        .org_by_code(code.as_str())
        .await?
        .ok_or(IdentityError::NotFound("organisation"))?;
    let t = lang.texts();
    let mut reps = Vec::new();
    for rep in identity::representatives(&app.db, &org.id).await? {
        let person = app.db.person(&rep.person_id).await?;
        let shown = person.as_ref().map(|p| ctx::person_json(app, p));
        let text = |k: &str| {
            shown
                .as_ref()
                .and_then(|s| s[k].as_str())
                .unwrap_or("")
                .to_owned()
        };
        reps.push(RepView {
            id: rep.id.clone(),
            person_name: text("name"),
            id_masked: text("id_number_masked"),
            role: page::role_text(t, rep.role.as_str()),
            matters: match &rep.matters {
                Matters::All(_) => "all".to_owned(),
                Matters::Only(list) => list.join(", "),
            },
            from: local_time(rep.valid_from, "%Y-%m-%d"),
            until: rep
                .valid_until
                .map(|u| local_time(u, "%Y-%m-%d"))
                .unwrap_or_else(|| "—".to_owned()),
        });
    }
    Ok(OrgView {
        id: org.id,
        name: org.name,
        credit_code: org.credit_code,
        reps,
    })
}

/// What the page says above the organisation: an error or a notice, and the status it goes with.
struct Said<'a> {
    error: Option<&'a str>,
    notice: Option<&'a str>,
    status: StatusCode,
}

async fn show(app: &App, jar: CookieJar, lang: Lang, admin: &Admin, code: &str, said: Said<'_>) -> Response {
    let Said {
        error,
        notice,
        status,
    } = said;
    let l = labels(lang);
    let shown = error.map(|e| super::problem_text::detail(lang, status, e));
    let mut v = View {
        title: l.orgs,
        section: "orgs",
        error: shown.as_deref(),
        notice,
        code,
        ..View::default()
    };
    let mut status = status;
    let failure;
    if !code.trim().is_empty() {
        match org_view(app, lang, code).await {
            Ok(org) => v.org = Some(org),
            Err(e) => {
                status = status_of(&e);
                failure = super::problem_text::detail(lang, status, &message(&e));
                v.error = Some(&failure);
            }
        }
    }
    render(app, jar, lang, admin, v, status)
}

async fn org_page(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    uri: axum::http::Uri,
    Query(q): Query<OrgQuery>,
) -> Response {
    let admin = match admin(&app, &jar, lang, &uri.to_string()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !admin.can_manage_representations() {
        return page::fail(
            lang,
            StatusCode::FORBIDDEN,
            crate::http::messages::Msg::NotAllowed("representation.manage"),
        );
    }
    let notice = q.notice.is_some().then_some(labels(lang).done);
    let code = q.code.unwrap_or_default();
    let said = Said {
        error: None,
        notice,
        status: StatusCode::OK,
    };
    show(&app, jar, lang, &admin, &code, said).await
}

async fn record(ctx: &Ctx<'_>, action: &str, subject: &str, outcome: &str, detail: serde_json::Value) {
    crate::services::audit::record_quietly(
        &ctx.app.db,
        ctx.app.now(),
        NewEvent {
            actor: &ctx.admin.actor,
            action,
            subject,
            client_id: "",
            address: ctx.address,
            outcome,
            detail: detail.to_string(),
        },
    )
    .await;
}

/// The organisation a representation form changes, once the admin may manage representations (a refusal
/// is audited against `subject`).
async fn org_to_change(
    ctx: &Ctx<'_>,
    lang: Lang,
    action: &str,
    subject: &str,
    org_id: &str,
) -> Result<Organisation, Response> {
    if !ctx.admin.can_manage_representations() {
        record(ctx, action, subject, "forbidden", json!({})).await;
        let message = crate::http::messages::Msg::NotAllowed(action);
        return Err(page::fail(lang, StatusCode::FORBIDDEN, message));
    }
    match ctx.app.db.org(org_id).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(page::error_in(
            lang,
            StatusCode::NOT_FOUND,
            labels(lang).not_found,
        )),
        Err(e) => Err(super::problem_page(lang, super::Problem::internal(e))),
    }
}

fn back_to(code: &str) -> Response {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", code)
        .append_pair("notice", "done")
        .finish();
    Redirect::to(&format!("/admin/orgs?{query}")).into_response()
}

/// A date typed in the form (China Standard Time, start of the day).
fn day(raw: &str) -> Result<Option<i64>, IdentityError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let date = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| IdentityError::Invalid("dates are written YYYY-MM-DD"))?;
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .ok_or(IdentityError::Invalid("dates are written YYYY-MM-DD"))?;
    Ok(Some(midnight.and_utc().timestamp() - 8 * 3600))
}

fn matters(raw: &str) -> Matters {
    let list: Vec<String> = raw
        .split([',', '，', ' '])
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    // Nothing typed is nothing granted (refused by `identity::check_window`), never every matter.
    if !list.is_empty() && list.iter().any(|m| m.eq_ignore_ascii_case("all")) {
        Matters::all()
    } else {
        Matters::Only(list)
    }
}

/// The person a form names by resident ID number or phone.
async fn person_by_ref(ctx: &Ctx<'_>, lang: Lang, raw: &str) -> Result<String, (StatusCode, String)> {
    let raw = raw.trim();
    let found = if Phone::parse(raw).is_ok() {
        crate::http::admin::persons::find_person(ctx, None, Some(raw)).await
    } else {
        crate::http::admin::persons::find_person(ctx, Some(raw), None).await
    }
    .map_err(|p| (p.status, p.detail))?;
    found
        .first()
        .and_then(|p| p["id"].as_str())
        .map(str::to_owned)
        .ok_or((StatusCode::NOT_FOUND, labels(lang).not_found.to_owned()))
}

#[derive(Deserialize)]
struct AppointForm {
    csrf: Option<String>,
    /// Resident ID number or phone: in the body, never in a URL.
    person: String,
    role: String,
    /// The legal representative or manager who appoints an agent in person (ID number or phone);
    /// empty for a super admin recording the business registry's word.
    #[serde(default)]
    appointed_by: String,
    #[serde(default)]
    matters: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
}

async fn appoint(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(org_id): Path<String>,
    Form(f): Form<AppointForm>,
) -> Response {
    let posted = match Posted::check(&app, &jar, lang, f.csrf.as_deref(), address).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (admin, ctx) = (&posted.admin, posted.ctx(&app));
    let org = match org_to_change(&ctx, lang, "representation.appoint", &org_id, &org_id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let result: Result<_, (StatusCode, String)> = async {
        let person_id = person_by_ref(&ctx, lang, &f.person).await?;
        let appointed_by = match f.appointed_by.trim() {
            "" => None,
            appointer => Some(person_by_ref(&ctx, lang, appointer).await?),
        };
        let fail = |e: IdentityError| (status_of(&e), message(&e));
        let role = Role::parse(&f.role).ok_or_else(|| fail(IdentityError::Invalid("unknown role")))?;
        let now = app.now();
        let new = NewRepresentation {
            person_id,
            org_id: org.id.clone(),
            role,
            matters: matters(&f.matters),
            valid_from: day(&f.valid_from).map_err(fail)?.unwrap_or(now),
            valid_until: day(&f.valid_until).map_err(fail)?,
        };
        identity::appoint(
            &app.db,
            admin,
            new,
            appointed_by.as_deref(),
            now,
            app.random.as_ref(),
        )
        .await
        .map_err(fail)
    }
    .await;
    match result {
        Ok(rep) => {
            let detail = json!({ "org": org.credit_code, "role": rep.role.as_str(), "person": rep.person_id,
                                 "appointed_under": rep.appointed_under });
            record(&ctx, "representation.appoint", &rep.id, "success", detail).await;
            back_to(&org.credit_code)
        }
        Err((status, m)) => {
            let detail = json!({ "org": org.credit_code, "error": m });
            record(&ctx, "representation.appoint", &org.id, "refused", detail).await;
            let said = Said {
                error: Some(&m),
                notice: None,
                status,
            };
            show(&app, jar, lang, admin, &org.credit_code, said).await
        }
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    csrf: Option<String>,
}

async fn revoke(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path((org_id, rep_id)): Path<(String, String)>,
    Form(f): Form<RevokeForm>,
) -> Response {
    let posted = match Posted::check(&app, &jar, lang, f.csrf.as_deref(), address).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = posted.ctx(&app);
    let org = match org_to_change(&ctx, lang, "representation.revoke", &rep_id, &org_id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match identity::revoke_representation(&app.db, &org.id, &rep_id, app.now()).await {
        Ok(rep) => {
            let detail =
                json!({ "org": org.credit_code, "role": rep.role.as_str(), "person": rep.person_id });
            record(&ctx, "representation.revoke", &rep.id, "success", detail).await;
            back_to(&org.credit_code)
        }
        Err(e) => page::error_in(lang, status_of(&e), &message(&e)),
    }
}
