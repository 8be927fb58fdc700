//! `/admin/api/…`: persons (look-up, lock, unlock, counter verification, end sessions), department
//! apps (create, rotate secret, disable), the audit trail (search, JSON Lines export, verify), keys.
//! Every change is audited; a refused one too.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::edit::{self, JsonBody};
use super::{Caller, Problem};
use crate::app::App;
use crate::crypto;
use crate::http::forms::ClientAddr;
use crate::identity::{Phone, ResidentId};
use crate::services::admin::{Admin, PersonAction};
use crate::services::registry::{self, NewClient};
use crate::services::{audit, logout};
use crate::store::audit::{AuditEvent, NewEvent};
use crate::store::persons::PersonRow;

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/admin/api/persons",
            get(find_persons).post(super::persons::create),
        )
        .route("/admin/api/persons/{id}/{action}", post(person_action))
        .route("/admin/api/clients", post(create_client).get(super::apps::list))
        .route("/admin/api/clients/{id}/rotate-secret", post(rotate_secret))
        .route("/admin/api/clients/{id}/disable", post(disable_client))
        .route("/admin/api/audit", get(search_audit))
        .route("/admin/api/audit/export", get(export_audit))
        .route("/admin/api/audit/verify", get(verify_audit))
        .route("/admin/api/keys", get(list_keys))
        .route("/admin/api/keys/rotate", post(rotate_keys))
}

/// An admin acting through the API or the console.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub admin: &'a Admin,
    pub address: &'a str,
}

impl<'a> Ctx<'a> {
    /// The context of an admin API request.
    pub fn of(app: &'a App, caller: &'a Caller, address: &'a str) -> Self {
        Ctx {
            app,
            admin: &caller.0,
            address,
        }
    }

    pub(super) async fn audit(
        &self,
        action: &str,
        subject: &str,
        client: &str,
        outcome: &str,
        detail: Value,
    ) -> Result<(), Problem> {
        audit::record(
            self.app,
            NewEvent {
                actor: &self.admin.actor,
                action,
                subject,
                client_id: client,
                address: self.address,
                outcome,
                detail: detail.to_string(),
            },
        )
        .await
        .map_err(Problem::internal)
    }

    pub async fn audit_forbidden(&self, action: &str) -> Result<(), Problem> {
        self.audit(action, "", "", "forbidden", json!({})).await
    }

    pub async fn audit_success(&self, action: &str, client: &str) -> Result<(), Problem> {
        self.audit(action, client, client, "success", json!({})).await
    }

    /// Refuses, leaving a trace of the attempt.
    pub(super) async fn forbid(
        &self,
        allowed: bool,
        action: &str,
        subject: &str,
        client: &str,
    ) -> Result<(), Problem> {
        if allowed {
            return Ok(());
        }
        self.audit(action, subject, client, "forbidden", json!({}))
            .await?;
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("not allowed: {action}"),
        ))
    }
}

pub fn person_json(app: &App, p: &PersonRow) -> Value {
    let id_masked = app
        .secrets
        .decrypt(&p.id_number_enc, p.id.as_bytes())
        .ok()
        .and_then(|n| ResidentId::parse(&n).ok())
        .map(|n| n.masked())
        .unwrap_or_default();
    json!({
        "id": p.id,
        "name": p.name,
        "id_number_masked": id_masked,
        "phone_masked": p.phone.as_deref().and_then(|x| Phone::parse(x).ok()).map(|x| x.masked()),
        "real_name_level": p.real_name_level,
        "real_name_method": p.real_name_method,
        "status": p.status,
        "phone_verified": p.phone_verified,
        "password_must_change": p.password_must_change,
        "version": p.version,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonQuery {
    id_number: Option<String>,
    phone: Option<String>,
    name: Option<String>,
}

/// Finds a person by resident ID number (through its keyed hash), by phone, or by name.
async fn find_persons(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Query(q): Query<PersonQuery>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let list = match (q.name.as_deref(), q.id_number.is_none() && q.phone.is_none()) {
        (Some(name), true) => super::persons::find_by_name(&ctx, name).await?,
        (Some(_), false) => {
            return Err(Problem::field(
                "name",
                "give exactly one of id_number, phone or name",
            ));
        }
        (None, _) => find_person(&ctx, q.id_number.as_deref(), q.phone.as_deref()).await?,
    };
    Ok(Json(json!({ "persons": list })).into_response())
}

pub async fn find_person(
    ctx: &Ctx<'_>,
    id_number: Option<&str>,
    phone: Option<&str>,
) -> Result<Vec<Value>, Problem> {
    let app = ctx.app;
    ctx.forbid(ctx.admin.can_look_up_persons(), "person.search", "", "")
        .await?;
    let found = match (id_number, phone) {
        (Some(n), None) => {
            let id = ResidentId::parse(n).map_err(|e| Problem::field("id_number", e.to_string()))?;
            app.db
                .person_by_id_hash(&app.secrets.id_hash(id.as_str()))
                .await
                .map_err(Problem::internal)?
        }
        (None, Some(p)) => {
            let phone = Phone::parse(p).map_err(|e| Problem::field("phone", e.to_string()))?;
            app.db
                .person_by_phone(phone.as_str())
                .await
                .map_err(Problem::internal)?
        }
        _ => {
            return Err(Problem::field(
                "id_number",
                "give exactly one of id_number, phone or name",
            ));
        }
    };
    let subject = found.as_ref().map(|p| p.id.clone()).unwrap_or_default();
    ctx.audit(
        "person.search",
        &subject,
        "",
        "success",
        json!({ "found": found.is_some() }),
    )
    .await?;
    Ok(found.iter().map(|p| person_json(app, p)).collect())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PersonActionBody {
    /// For `verify`: the document checked at the counter.
    document: Option<String>,
    /// For `reset-password`: keep the person's passkeys (by default they are removed).
    keep_passkeys: Option<bool>,
}

/// `lock`, `unlock`, `disable`, `verify` (counter: real-name level 3), `end-sessions`,
/// `reset-password` (a temporary password, shown once).
async fn person_action(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path((id, action)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> Result<Response, Problem> {
    let body: PersonActionBody = if raw.is_empty() {
        PersonActionBody::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "malformed body", e.to_string()))?
    };
    let ctx = Ctx::of(&app, &caller, &address);
    if action == "reset-password" {
        if body.document.is_some() {
            return Err(Problem::field("document", "only for verify"));
        }
        let keep = body.keep_passkeys.unwrap_or(false);
        return super::persons::reset_password(&ctx, &id, keep).await;
    }
    if body.keep_passkeys.is_some() {
        return Err(Problem::field("keep_passkeys", "only for reset-password"));
    }
    Ok(Json(act_on_person(&ctx, &id, &action, body.document).await?).into_response())
}

pub async fn act_on_person(
    ctx: &Ctx<'_>,
    id: &str,
    action: &str,
    document: Option<String>,
) -> Result<Value, Problem> {
    let (app, admin) = (ctx.app, ctx.admin);
    let kind = match action {
        "lock" => PersonAction::Lock,
        "disable" => PersonAction::Disable,
        "unlock" => PersonAction::Unlock,
        "verify" => PersonAction::Verify,
        "end-sessions" => PersonAction::EndSessions,
        _ => return Err(Problem::new(StatusCode::NOT_FOUND, "not found", "unknown action")),
    };
    let (person, loud) = super::persons::checked_person(ctx, id, kind, &format!("person.{action}")).await?;
    let now = app.now();
    let mut detail = json!({});
    match action {
        "lock" | "unlock" | "disable" => {
            let status = match action {
                "lock" => "locked",
                "disable" => "disabled",
                _ => "active",
            };
            // A super admin's lock is a super admin's to lift (see `services::admin`).
            app.db
                .set_person_status_by(&person.id, status, admin.is_super(), now)
                .await
                .map_err(Problem::internal)?;
            if status != "active" {
                end_all_sessions(app, &person.id).await?;
            }
            detail = json!({ "status": status });
        }
        "verify" => {
            let document = document.unwrap_or_else(|| "idcard".into());
            if document != "idcard" {
                return Err(Problem::field(
                    "document",
                    "the counter verifies with the resident identity card (idcard)",
                ));
            }
            app.db
                .set_real_name(&person.id, 3, "counter:idcard", &admin.actor, now)
                .await
                .map_err(Problem::internal)?;
            detail = json!({ "real_name_level": 3, "document": document });
        }
        _ => end_all_sessions(app, &person.id).await?,
    }
    let detail = super::persons::marked(detail, loud);
    ctx.audit(&format!("person.{action}"), &person.id, "", "success", detail)
        .await?;
    let person = app
        .db
        .person(id)
        .await
        .map_err(Problem::internal)?
        .unwrap_or(person);
    Ok(person_json(app, &person))
}

/// Ends every session of the person and revokes every grant (offline ones too): see
/// `logout::end_everything`.
pub(super) async fn end_all_sessions(app: &App, person_id: &str) -> Result<(), Problem> {
    logout::end_everything(app, person_id, app.now())
        .await
        .map_err(Problem::internal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientBody {
    name: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    min_acr: Option<i64>,
}

async fn create_client(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    parsed: JsonBody<ClientBody>,
) -> Result<Response, Problem> {
    let b = edit::body(parsed)?;
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(
        caller.0.can_create_client_in(&b.department),
        "client.create",
        "",
        "",
    )
    .await?;
    if b.min_acr.is_some_and(|a| !(1..=2).contains(&a)) {
        return Err(Problem::field("min_acr", "min_acr is 1 or 2"));
    }
    let defaults = NewClient::default();
    // Admin-only scopes are never handed out through this path.
    let scopes = b.scopes.unwrap_or(defaults.scopes);
    if let Some(bad) = scopes.iter().find(|s| s.starts_with("yunid:")) {
        return Err(Problem::field("scopes", format!("{bad} cannot be granted here")));
    }
    if !caller.0.is_super() {
        let wanted = crate::services::admin::ReleaseSettings {
            scopes: &scopes,
            public_subjects: false,
            redirect_uris: &b.redirect_uris,
        };
        if crate::services::admin::needs_super_admin(None, &wanted).is_some() {
            ctx.forbid(false, "client.create", "", "").await?;
        }
    }
    let new = NewClient {
        name: b.name,
        redirect_uris: b.redirect_uris,
        post_logout_redirect_uris: b.post_logout_redirect_uris,
        scopes,
        grant_types: b.grant_types.unwrap_or(defaults.grant_types),
        backchannel_logout_uri: b.backchannel_logout_uri,
        min_acr: b.min_acr.unwrap_or(1),
        department: b.department,
        ..NewClient::default()
    };
    let (client, secret) = registry::add_client(&app, new)
        .await
        .map_err(|e| Problem::field("client", e.to_string()))?;
    ctx.audit(
        "client.create",
        &client.id,
        &client.id,
        "success",
        json!({ "department": client.department }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "client_id": client.id, "client_secret": secret })),
    )
        .into_response())
}

pub(super) async fn managed_client(
    ctx: &Ctx<'_>,
    id: &str,
    action: &str,
) -> Result<std::sync::Arc<crate::store::clients::Client>, Problem> {
    let client = edit::found(ctx.app.db.client(id).await, "client")?;
    ctx.forbid(ctx.admin.can_manage_client(&client), action, id, id)
        .await?;
    console_client_is_yunids(&client)?;
    Ok(client)
}

/// The console's own client is yunid's to keep (its secret derives from the deployment's secret, its
/// settings from the issuer): nobody rotates, disables or edits it through the API.
pub(super) fn console_client_is_yunids(client: &crate::store::clients::Client) -> Result<(), Problem> {
    if crate::services::console::is_console(client) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "managed by yunid",
            "the admin console's own client is kept by yunid and cannot be changed here",
        ));
    }
    Ok(())
}

/// A new secret, shown once; the old one stops working immediately.
async fn rotate_secret(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let secret = rotate_client_secret(&ctx, &id).await?;
    Ok(Json(json!({ "client_id": id, "client_secret": secret })).into_response())
}

pub async fn rotate_client_secret(ctx: &Ctx<'_>, id: &str) -> Result<String, Problem> {
    let client = managed_client(ctx, id, "client.rotate_secret").await?;
    let secret = crypto::random_token();
    ctx.app
        .db
        .set_client_secret(&client.id, &crypto::token_hash(&secret))
        .await
        .map_err(Problem::internal)?;
    ctx.audit(
        "client.rotate_secret",
        &client.id,
        &client.id,
        "success",
        json!({}),
    )
    .await?;
    Ok(secret)
}

async fn disable_client(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let client = managed_client(&ctx, &id, "client.disable").await?;
    app.db
        .set_client_disabled(&client.id, true)
        .await
        .map_err(Problem::internal)?;
    // A disabled app keeps none of its grants.
    app.db
        .revoke_client_families(&client.id, app.now())
        .await
        .map_err(Problem::internal)?;
    ctx.audit("client.disable", &client.id, &client.id, "success", json!({}))
        .await?;
    Ok(Json(json!({ "client_id": client.id, "disabled": true })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    #[serde(default)]
    pub since: i64,
    #[serde(default)]
    pub limit: Option<i64>,
}

pub async fn audit_events(app: &App, admin: &Admin, q: &AuditQuery) -> Result<Vec<Value>, Problem> {
    let departments = admin.departments();
    if !admin.can_read_all_audit() && departments.is_empty() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "not allowed: audit.read",
        ));
    }
    let filter = [
        ("action", &q.action),
        ("actor", &q.actor),
        ("subject", &q.subject),
        ("client_id", &q.client_id),
    ]
    .into_iter()
    .find_map(|(k, v)| v.as_deref().map(|v| (k, v)));
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let events = app
        .db
        .audit_events(filter, q.since, limit)
        .await
        .map_err(Problem::internal)?;
    let mut out = Vec::new();
    for e in events {
        // A department admin sees only the events of the department's apps.
        if !admin.can_read_all_audit() {
            let own = match app.db.client(&e.client_id).await.map_err(Problem::internal)? {
                Some(c) => departments.contains(&c.department.as_str()),
                None => false,
            };
            if !own {
                continue;
            }
        }
        out.push(serde_json::to_value(&e).map_err(Problem::internal)?);
    }
    Ok(out)
}

/// One page of the trail as this admin may see it, newest first, starting below sequence number `before`
/// (the newest when absent); with the `before` of the next (older) page when there is one.
pub async fn newest_audit_events(
    app: &App,
    admin: &Admin,
    before: Option<i64>,
    page: usize,
) -> Result<(Vec<AuditEvent>, Option<i64>), Problem> {
    const BATCH: i64 = 500;
    // A department admin's events may be sparse: scan at most this many rows for one page.
    const SCAN: usize = 20_000;
    let departments = admin.departments();
    let all = admin.can_read_all_audit();
    if !all && departments.is_empty() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "not allowed: audit.read",
        ));
    }
    let mut out = Vec::new();
    let mut cursor = before.unwrap_or(i64::MAX);
    let mut scanned = 0;
    loop {
        let batch = app
            .db
            .audit_events_before(cursor, BATCH)
            .await
            .map_err(Problem::internal)?;
        let exhausted = (batch.len() as i64) < BATCH;
        for e in batch {
            scanned += 1;
            cursor = e.seq;
            let visible = all
                || match app.db.client(&e.client_id).await.map_err(Problem::internal)? {
                    Some(c) => departments.contains(&c.department.as_str()),
                    None => false,
                };
            if visible {
                if out.len() == page {
                    // There is an older one: the next page starts below the last one shown.
                    let next = out.last().map(|l: &AuditEvent| l.seq);
                    return Ok((out, next));
                }
                out.push(e);
            }
        }
        if exhausted {
            return Ok((out, None));
        }
        if scanned >= SCAN {
            return Ok((out, Some(cursor)));
        }
    }
}

async fn search_audit(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Problem> {
    Ok(Json(json!({ "events": audit_events(&app, &caller.0, &q).await? })).into_response())
}

/// JSON Lines, one event a line.
async fn export_audit(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Problem> {
    let events = audit_events(&app, &caller.0, &q).await?;
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], body).into_response())
}

async fn verify_audit(State(app): State<App>, caller: Caller) -> Result<Response, Problem> {
    caller.require(caller.0.can_read_all_audit(), "verify the audit trail")?;
    let v = audit::verify(&app).await.map_err(Problem::internal)?;
    Ok(Json(v).into_response())
}

async fn list_keys(State(app): State<App>, caller: Caller, _h: HeaderMap) -> Result<Response, Problem> {
    caller.require(caller.0.is_super(), "see keys")?;
    let now = app.now();
    let grace = crate::app::publish_grace(&app.config);
    let entries = crate::keys::rotation::list(&app.db, now, grace)
        .await
        .map_err(Problem::internal)?;
    let keys: Vec<Value> = entries
        .iter()
        .map(|k| {
            let state = if k.is_signing() {
                "active"
            } else if k.is_next() {
                "next"
            } else {
                "retiring"
            };
            json!({
                "kid": k.kid, "alg": k.alg.as_str(), "state": state, "created_at": k.created_at,
                "activated_at": k.activated_at, "retired_at": k.retired_at,
            })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

async fn rotate_keys(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    ctx.forbid(caller.0.is_super(), "keys.rotate", "", "").await?;
    let added = crate::keys::rotation::rotate(&app.db, &app.kek, app.now())
        .await
        .map_err(Problem::internal)?;
    // Published here at once; every node publishes it within its refresh interval, then it signs.
    app.reload_keys().await.map_err(Problem::internal)?;
    let kids: Vec<&str> = added.iter().map(|k| k.kid.as_str()).collect();
    ctx.audit("keys.rotate", "", "", "success", json!({ "new": kids }))
        .await?;
    Ok(Json(json!({ "new": kids })).into_response())
}
