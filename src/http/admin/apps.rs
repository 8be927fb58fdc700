//! `/admin/api/clients` (list) and `/admin/api/clients/{id}` (settings, read and edited with
//! `If-Match`). Department admins see and edit their department's apps only; auditors read.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ctx::{Ctx, console_client_is_yunids, managed_client};
use super::edit::{self, JsonBody, body, if_match, tagged};
use super::{Caller, Problem};
use crate::app::App;
use crate::crypto;
use crate::http::forms::ClientAddr;
use crate::services::admin::clients as admin_clients;
use crate::services::registry::{self, NewClient};
use crate::store::clients::{AuthMethod, Client, SubjectType};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/api/clients", post(create_client).get(list))
        .route("/admin/api/clients/{id}", get(read).patch(update))
        .route("/admin/api/clients/{id}/rotate-secret", post(rotate_secret))
        .route("/admin/api/clients/{id}/disable", post(disable_client))
}

async fn client_json(app: &App, c: &Client) -> Result<Value, Problem> {
    let licence_types: Vec<String> = app
        .db
        .allowed_licence_types(&c.id)
        .await
        .map_err(Problem::internal)?
        .into_iter()
        .map(|t| t.code)
        .collect();
    let jwks: Option<Value> = c.jwks.as_deref().and_then(|j| serde_json::from_str(j).ok());
    Ok(json!({
        "client_id": c.id,
        "name": c.name,
        "department": c.department,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "scopes": c.scopes,
        "grant_types": c.grant_types,
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "jwks": jwks,
        "jwks_uri": c.jwks_uri,
        "id_token_signed_response_alg": c.id_token_alg.as_str(),
        "subject_type": match c.subject_type {
            SubjectType::Public => "public",
            SubjectType::Pairwise => "pairwise",
        },
        "sector": c.sector,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "min_acr": c.min_acr,
        "disabled": c.disabled,
        "matters": c.matters,
        "licence_types": licence_types,
        "version": c.version,
    }))
}

/// `GET /admin/api/clients`: the apps this admin may see.
pub async fn list(State(app): State<App>, caller: Caller) -> Result<Response, Problem> {
    let admin = &caller.0;
    if !admin.has(&crate::services::admin::Role::Auditor) && admin.departments().is_empty() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "not allowed: client.list",
        ));
    }
    let mut out = Vec::new();
    for c in app.db.all_clients().await.map_err(Problem::internal)? {
        if admin.can_read_client(&c) {
            out.push(client_json(&app, &c).await?);
        }
    }
    Ok(Json(json!({ "clients": out })).into_response())
}

async fn load(ctx: &Ctx<'_>, id: &str, action: &str) -> Result<Client, Problem> {
    let client = edit::found(ctx.app.db.client(id).await, "client")?;
    let allowed = if action == "client.read" {
        ctx.admin.can_read_client(&client)
    } else {
        ctx.admin.can_manage_client(&client)
    };
    ctx.forbid(allowed, action, id, id).await?;
    if action != "client.read" {
        console_client_is_yunids(&client)?;
    }
    Ok(Client::clone(&client))
}

async fn read(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let client = load(&ctx, &id, "client.read").await?;
    Ok(tagged(
        StatusCode::OK,
        client.version,
        client_json(&app, &client).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default, deserialize_with = "edit::nullable")]
    jwks: Option<Option<Value>>,
    #[serde(default, deserialize_with = "edit::nullable")]
    jwks_uri: Option<Option<String>>,
    #[serde(default)]
    subject_type: Option<String>,
    #[serde(default, deserialize_with = "edit::nullable")]
    backchannel_logout_uri: Option<Option<String>>,
    #[serde(default)]
    min_acr: Option<i64>,
    #[serde(default)]
    matters: Option<Vec<String>>,
    #[serde(default)]
    disabled: Option<bool>,
    /// The e-licence types the app may receive (replaces the list; super admins only).
    #[serde(default)]
    licence_types: Option<Vec<String>>,
}

/// `PATCH /admin/api/clients/{id}`. The pairwise sector stays as registered, so the subjects an app
/// already knows do not change when its redirect URIs do.
async fn update(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
    parsed: JsonBody<ClientPatch>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let mut client = load(&ctx, &id, "client.update").await?;
    let b = body(parsed)?;
    // Which licences an app receives is a data-release decision, not its department's.
    ctx.forbid(
        b.licence_types.is_none() || caller.0.is_super(),
        "client.update",
        &id,
        &id,
    )
    .await?;
    let version = if_match(&headers, client.version)?;
    let before = client.clone();
    if let Some(v) = b.name {
        client.name = v.trim().to_owned();
    }
    if let Some(v) = b.redirect_uris {
        client.redirect_uris = v;
    }
    if let Some(v) = b.post_logout_redirect_uris {
        client.post_logout_redirect_uris = v;
    }
    if let Some(v) = b.scopes {
        // Admin scopes are not handed out here, though an automation client keeps the ones it has.
        if let Some(bad) = v
            .iter()
            .find(|s| s.starts_with("yunid:") && !before.scopes.contains(s))
        {
            return Err(Problem::field("scopes", format!("{bad} cannot be granted here")));
        }
        client.scopes = v;
    }
    if let Some(v) = b.grant_types {
        client.grant_types = v;
    }
    if let Some(v) = b.token_endpoint_auth_method {
        client.auth_method = AuthMethod::parse(&v).ok_or_else(|| {
            Problem::field(
                "token_endpoint_auth_method",
                "client_secret_basic, client_secret_post or private_key_jwt",
            )
        })?;
    }
    if let Some(v) = b.jwks {
        client.jwks = v.map(|j| j.to_string());
    }
    if let Some(v) = b.jwks_uri {
        client.jwks_uri = v;
    }
    if let Some(v) = b.subject_type {
        client.subject_type = match v.as_str() {
            "pairwise" => SubjectType::Pairwise,
            "public" => SubjectType::Public,
            _ => {
                return Err(Problem::field(
                    "subject_type",
                    "subject_type is pairwise or public",
                ));
            }
        };
    }
    if let Some(v) = b.backchannel_logout_uri {
        client.backchannel_logout_uri = v;
    }
    if let Some(v) = b.min_acr {
        client.min_acr = v;
    }
    if let Some(v) = b.matters {
        client.matters = v;
    }
    if let Some(v) = b.disabled {
        client.disabled = v;
    }
    registry::check_settings(&client, app.config.allow_insecure_redirects)
        .map_err(|(field, message)| Problem::field(field, message))?;
    // Whose data an app may receive (ID numbers, organisations, licences, public subjects, another host
    // for its codes) is a super admin's decision, not its department's.
    if !caller.0.is_super() {
        let settings = |c: &crate::store::clients::Client| {
            (
                c.scopes.clone(),
                c.subject_type == SubjectType::Public,
                c.redirect_uris.clone(),
            )
        };
        let (b_scopes, b_public, b_uris) = settings(&before);
        let (a_scopes, a_public, a_uris) = settings(&client);
        let release = |scopes, public_subjects, redirect_uris| crate::services::admin::ReleaseSettings {
            scopes,
            public_subjects,
            redirect_uris,
        };
        let before_settings = release(&b_scopes, b_public, &b_uris);
        if let Some(field) = crate::services::admin::needs_super_admin(
            Some((&before_settings, before.sector.as_str())),
            &release(&a_scopes, a_public, &a_uris),
        ) {
            ctx.forbid(false, "client.update", &id, &id).await?;
            return Err(Problem::field(field, "only a super admin may change this"));
        }
    }
    if client.auth_method != AuthMethod::PrivateKeyJwt && client.secret_hash.is_none() {
        return Err(Problem::field(
            "token_endpoint_auth_method",
            "this app has no secret: rotate one first, or keep private_key_jwt",
        ));
    }
    if let Some(codes) = &b.licence_types {
        for code in codes {
            if app
                .db
                .licence_type(code)
                .await
                .map_err(Problem::internal)?
                .is_none()
            {
                return Err(Problem::field(
                    "licence_types",
                    format!("{code} is not in the licence type catalogue"),
                ));
            }
        }
    }
    if !app
        .db
        .edit_client(&client, version, b.licence_types.as_deref())
        .await
        .map_err(Problem::internal)?
    {
        return Err(edit::stale());
    }
    // A disabled app keeps none of its grants.
    if client.disabled {
        app.db
            .revoke_client_families(&client.id, app.now())
            .await
            .map_err(Problem::internal)?;
    }
    ctx.audit(
        "client.update",
        &client.id,
        &client.id,
        "success",
        json!({ "disabled": client.disabled, "licence_types": b.licence_types }),
    )
    .await?;
    let client = load(&ctx, &id, "client.read").await?;
    Ok(tagged(
        StatusCode::OK,
        client.version,
        client_json(&app, &client).await?,
    ))
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
    let defaults = NewClient::default();
    let scopes = b.scopes.unwrap_or(defaults.scopes);
    let wanted = admin_clients::Wanted {
        department: &b.department,
        scopes: &scopes,
        redirect_uris: &b.redirect_uris,
        min_acr: b.min_acr,
    };
    if let Err(e) = admin_clients::may_create_client(&caller.0, &wanted) {
        return Err(ctx.refused(e, "client.create", "", "").await);
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
    let (client, secret) = app
        .registry()
        .add_client(new, app.now())
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
