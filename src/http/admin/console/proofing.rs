//! Proofing in the console (`/admin/proofing`): the checks asked of the authorities and the enterprise
//! bindings, searchable, and a super admin's suspension of a binding, under the same rules as the API
//! (`/admin/api/proofing/*`) and audited the same way.

use crate::store::proofing::BindingStatus;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::auth::{admin, form_admin};
use super::local_time;
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::{Lang, Texts};
use crate::http::{cookies, page};
use crate::services::proofing::orgs;
use crate::store::audit::NewEvent;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/proofing", get(show))
        .route("/admin/proofing/bindings/{id}/suspend", post(suspend))
        .route("/admin/proofing/brake/clear", post(clear_brake))
}

struct Words {
    title: &'static str,
    person: &'static str,
    connector: &'static str,
    outcome: &'static str,
    search: &'static str,
    checks: &'static str,
    bindings: &'static str,
    at: &'static str,
    txn: &'static str,
    status: &'static str,
    org: &'static str,
    suspend: &'static str,
    suspended: &'static str,
    back: &'static str,
    brakes: &'static str,
    brake_kind: &'static str,
    brake_state: &'static str,
    brake_count: &'static str,
    held: &'static str,
    not_held: &'static str,
    population: &'static str,
    registry: &'static str,
    restore: &'static str,
    clear: &'static str,
    cleared: &'static str,
}

fn words(lang: Lang) -> &'static Words {
    static ZH: Words = Words {
        title: "实名核验与企业绑定",
        person: "人员编号",
        connector: "核验渠道",
        outcome: "结果",
        search: "查询",
        checks: "核验记录",
        bindings: "企业绑定",
        at: "时间",
        txn: "流水号",
        status: "状态",
        org: "企业",
        suspend: "暂停绑定",
        suspended: "绑定已暂停。",
        back: "返回控制台",
        brakes: "自动处置熔断",
        brake_kind: "类别",
        brake_state: "状态",
        brake_count: "24 小时内次数 / 上限",
        held: "已熔断：自动处置已停止，待超级管理员核查后解除",
        not_held: "未熔断",
        population: "户籍复核锁定账号",
        registry: "企业复核暂停绑定",
        restore: "企业复核自动恢复绑定",
        clear: "解除熔断",
        cleared: "熔断已解除，自动处置恢复（仍受上限约束）。",
    };
    static EN: Words = Words {
        title: "Proofing and enterprise bindings",
        person: "Person id",
        connector: "Connector",
        outcome: "Outcome",
        search: "Search",
        checks: "Checks",
        bindings: "Enterprise bindings",
        at: "Time",
        txn: "Transaction",
        status: "Status",
        org: "Enterprise",
        suspend: "Suspend binding",
        suspended: "The binding is suspended.",
        back: "Back to the console",
        brakes: "Automatic action brakes",
        brake_kind: "Kind",
        brake_state: "State",
        brake_count: "Count in 24 hours / limit",
        held: "Held back: automatic actions stopped until a super admin clears the brake",
        not_held: "Not held back",
        population: "Accounts locked by population re-checks",
        registry: "Bindings suspended by registry re-checks",
        restore: "Bindings restored by registry re-checks",
        clear: "Clear the brakes",
        cleared: "The brakes are cleared; automatic actions resume (still within the limits).",
    };
    match lang {
        Lang::Zh => &ZH,
        Lang::En => &EN,
    }
}

#[derive(askama::Template)]
#[template(path = "admin_proofing.html")]
struct ProofingPage<'a> {
    t: &'static Texts,
    w: &'static Words,
    csrf: &'a str,
    notice: Option<&'static str>,
    person: &'a str,
    connector: &'a str,
    outcome: &'a str,
    may_suspend: bool,
    /// (kind label, held back, counted, limit); empty for an admin who may not read organisations.
    brakes: Vec<(&'static str, bool, i64, i64)>,
    any_held: bool,
    /// (time, person, connector, outcome, transaction)
    checks: Vec<(String, String, String, String, String)>,
    /// (id, organisation, credit code, person, status, reason, suspendable: active, or suspended by
    /// the registry's answer (a super admin pins it))
    bindings: Vec<(String, String, String, String, String, String, bool)>,
}

#[derive(Deserialize, Default)]
struct Search {
    person_id: Option<String>,
    connector: Option<String>,
    outcome: Option<String>,
    notice: Option<String>,
}

async fn show(State(app): State<App>, lang: Lang, jar: CookieJar, Query(q): Query<Search>) -> Response {
    let admin = match admin(&app, &jar, lang, "/admin/proofing").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !(admin.can_look_up_persons() || admin.can_read_orgs()) {
        return page::error_in(lang, StatusCode::FORBIDDEN, words(lang).title);
    }
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (person, connector, outcome) = (
        nonempty(&q.person_id),
        nonempty(&q.connector),
        nonempty(&q.outcome),
    );
    let result = async {
        let checks = match admin.can_look_up_persons() {
            true => {
                app.db
                    .proofing_checks(person.as_deref(), connector.as_deref(), outcome.as_deref(), 200)
                    .await?
            }
            false => Vec::new(),
        };
        let mut bindings = Vec::new();
        if admin.can_read_orgs() {
            for b in app.db.bindings(person.as_deref(), None, None, 200).await? {
                let org = app.db.org(&b.org_id).await?;
                let (name, code) = org.map(|o| (o.name, o.credit_code)).unwrap_or_default();
                let suspendable =
                    b.status == BindingStatus::Active || b.suspended_by.as_deref() == Some("registry");
                bindings.push((
                    b.id,
                    name,
                    code,
                    b.person_id,
                    b.status.as_str().to_owned(),
                    b.reason.unwrap_or_default(),
                    suspendable,
                ));
            }
        }
        let brakes = match admin.can_read_orgs() {
            true => crate::services::proofing::brake_state(&app.proofing(), app.now())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            false => Vec::new(),
        };
        anyhow::Ok((checks, bindings, brakes))
    }
    .await;
    let (checks, bindings, brakes) = match result {
        Ok(r) => r,
        Err(e) => return page::internal(e, "console proofing"),
    };
    let (jar, csrf) = cookies::csrf(&app, jar);
    let w = words(lang);
    let mut res = page::render(ProofingPage {
        t: lang.texts(),
        w,
        csrf: &csrf,
        notice: match q.notice.as_deref() {
            Some("suspended") => Some(w.suspended),
            Some("cleared") => Some(w.cleared),
            _ => None,
        },
        any_held: brakes.iter().any(|b| b.tripped_by.is_some()),
        brakes: brakes
            .iter()
            .map(|b| {
                let label = match b.kind {
                    "population" => w.population,
                    "registry" => w.registry,
                    _ => w.restore,
                };
                (label, b.tripped_by.is_some(), b.counted, b.limit)
            })
            .collect(),
        person: person.as_deref().unwrap_or(""),
        connector: connector.as_deref().unwrap_or(""),
        outcome: outcome.as_deref().unwrap_or(""),
        may_suspend: admin.is_super(),
        checks: checks
            .into_iter()
            .map(|c| {
                (
                    local_time(c.at, "%Y-%m-%d %H:%M:%S"),
                    c.person_id,
                    c.connector,
                    c.outcome,
                    c.transaction_id.unwrap_or_default(),
                )
            })
            .collect(),
        bindings,
    });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (jar, res).into_response()
}

#[derive(Deserialize)]
struct SuspendForm {
    csrf: Option<String>,
}

async fn suspend(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    Form(form): Form<SuspendForm>,
) -> Response {
    let admin = match form_admin(&app, &jar, lang, form.csrf.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = app.now();
    if !admin.is_super() {
        let event = NewEvent {
            actor: &admin.actor,
            action: "org.binding.suspend",
            subject: &id,
            address: &address,
            outcome: "forbidden",
            detail: json!({}).to_string(),
            ..Default::default()
        };
        if let Err(e) = app.db.append_audit(&event, now).await {
            return page::internal(e.into(), "console proofing");
        }
        return page::error_in(lang, StatusCode::FORBIDDEN, words(lang).suspend);
    }
    match orgs::suspend(&app.proofing(), &id, &admin.actor, now).await {
        Ok(_) => Redirect::to("/admin/proofing?notice=suspended").into_response(),
        Err(crate::services::proofing::ProofingError::Internal(e)) => page::internal(e, "console proofing"),
        Err(e) => page::error_in(lang, StatusCode::CONFLICT, &e.to_string()),
    }
}

/// A super admin clears the tripped brakes from the console (as `DELETE /admin/api/proofing/brake`):
/// CSRF-checked form, refusals and clearing audited (`proofing.brake.clear`).
async fn clear_brake(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(form): Form<SuspendForm>,
) -> Response {
    let admin = match form_admin(&app, &jar, lang, form.csrf.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = app.now();
    let (outcome, detail) = match admin.is_super() {
        true => match app.db.clear_brakes(&admin.actor, now).await {
            Ok(cleared) => ("success", json!({ "cleared": cleared })),
            Err(e) => return page::internal(e.into(), "console proofing"),
        },
        false => ("forbidden", json!({})),
    };
    let event = NewEvent {
        actor: &admin.actor,
        action: "proofing.brake.clear",
        subject: "proofing",
        address: &address,
        outcome,
        detail: detail.to_string(),
        ..Default::default()
    };
    if let Err(e) = app.db.append_audit(&event, now).await {
        return page::internal(e.into(), "console proofing");
    }
    if outcome != "success" {
        return page::error_in(lang, StatusCode::FORBIDDEN, words(lang).clear);
    }
    Redirect::to("/admin/proofing?notice=cleared").into_response()
}
