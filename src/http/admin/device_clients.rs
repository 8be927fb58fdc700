//! `/admin/api/clients/{id}/device`: marks an app as a kiosk, counter-screen or TV client of the device
//! authorization grant (RFC 8628), optionally limited to short sessions. Marking registers the app for
//! the grant type; unmarking takes it away. Whoever may edit the app may do this.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::ctx::{Ctx, console_client_is_yunids};
use super::edit::{self, JsonBody, body};
use super::{Caller, Problem};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::services::device::GRANT_TYPE;
use crate::services::registry;
use crate::store::clients::Client;

pub fn router() -> Router<App> {
    Router::new().route(
        "/admin/api/clients/{id}/device",
        get(read).put(mark).delete(unmark),
    )
}

/// Shortest and longest session a kiosk app may be limited to.
const SESSION_TTL: std::ops::RangeInclusive<i64> = 60..=86_400;

async fn load(ctx: &Ctx<'_>, id: &str, manage: bool) -> Result<Client, Problem> {
    let client = edit::found(ctx.app.db.client(id).await, "client")?;
    let (allowed, action) = if manage {
        (ctx.admin.can_manage_client(&client), "client.device")
    } else {
        (ctx.admin.can_read_client(&client), "client.read")
    };
    ctx.forbid(allowed, action, id, id).await?;
    if manage {
        console_client_is_yunids(&client)?;
    }
    Ok(Client::clone(&client))
}

fn view(client: &Client, setting: Option<Option<i64>>) -> Response {
    Json(json!({
        "client_id": client.id,
        "device_grant": client.allows_grant(GRANT_TYPE),
        "kiosk": setting.is_some(),
        // What applies: the app's own limit, or the default one for a kiosk marked without.
        "session_ttl": setting.map(crate::services::device::kiosk_ttl),
    }))
    .into_response()
}

async fn read(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let client = load(&ctx, &id, false).await?;
    let setting = app.db.device_client(&id).await.map_err(Problem::internal)?;
    Ok(view(&client, setting))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    /// The longest a grant obtained on this device lives, in seconds (`null`: the default kiosk limit,
    /// `services::device::DEFAULT_KIOSK_TTL`).
    #[serde(default)]
    session_ttl: Option<i64>,
}

/// Writes the app's grant types (when they change), as an edit of its settings.
async fn set_grant(app: &App, mut client: Client, on: bool) -> Result<Client, Problem> {
    if client.allows_grant(GRANT_TYPE) == on {
        return Ok(client);
    }
    let version = client.version;
    if on {
        client.grant_types.push(GRANT_TYPE.to_owned());
    } else {
        client.grant_types.retain(|g| g != GRANT_TYPE);
    }
    registry::check_settings(&client, app.config.allow_insecure_redirects)
        .map_err(|(field, message)| Problem::field(field, message))?;
    if !app
        .db
        .edit_client(&client, version, None)
        .await
        .map_err(Problem::internal)?
    {
        return Err(edit::stale());
    }
    Ok(client)
}

async fn mark(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    parsed: JsonBody<Mark>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let client = load(&ctx, &id, true).await?;
    let b = body(parsed)?;
    if b.session_ttl.is_some_and(|t| !SESSION_TTL.contains(&t)) {
        return Err(Problem::field(
            "session_ttl",
            "session_ttl is 60 to 86400 seconds, or null",
        ));
    }
    let client = set_grant(&app, client, true).await?;
    app.db
        .set_device_client(&id, Some(b.session_ttl))
        .await
        .map_err(Problem::internal)?;
    ctx.audit(
        "client.device",
        &id,
        &id,
        "success",
        json!({ "kiosk": true, "session_ttl": b.session_ttl }),
    )
    .await?;
    Ok(view(&client, Some(b.session_ttl)))
}

async fn unmark(
    State(app): State<App>,
    caller: Caller,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ctx = Ctx::of(&app, &caller, &address);
    let client = load(&ctx, &id, true).await?;
    set_grant(&app, client, false).await?;
    app.db
        .set_device_client(&id, None)
        .await
        .map_err(Problem::internal)?;
    ctx.audit("client.device", &id, &id, "success", json!({ "kiosk": false }))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
