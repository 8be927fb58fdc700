//! The client configuration endpoint (RFC 7592): read, update and delete a registration with its
//! registration access token.

use serde_json::{Map, Value, json};

use super::{Caller, Ctx, MetadataError, RegistrationError, Result, information, metadata, record};
use crate::crypto;
use crate::store::audit::NewEvent;
use crate::store::clients::{AuthMethod, Client, SubjectType};
use crate::store::registration::ClientRegistration;

/// The client and its registration, when `presented` is its registration access token (compared in
/// constant time; an unknown client costs the same comparison). Anything else is `invalid_token`,
/// recorded when the client exists.
async fn authorised(
    ctx: &Ctx<'_>,
    client_id: &str,
    caller: &Caller<'_>,
    action: &str,
    now: i64,
) -> Result<(Client, ClientRegistration)> {
    let presented = crypto::token_hash(caller.bearer.unwrap_or_default());
    let reg = ctx.db.client_registration(client_id).await?;
    let stored = reg
        .as_ref()
        .map(|r| r.access_token_hash.clone())
        .unwrap_or_else(|| crypto::token_hash("no such registration"));
    let matches = crypto::ct_eq(presented.as_bytes(), stored.as_bytes()) && caller.bearer.is_some();
    let client = match &reg {
        Some(_) => ctx.db.client(client_id).await?,
        None => None,
    };
    match (reg, client) {
        (Some(reg), Some(client)) if matches => Ok((Client::clone(&client), reg)),
        (Some(_), Some(client)) => {
            record(
                ctx,
                now,
                NewEvent {
                    actor: &format!("client:{}", client.id),
                    action,
                    subject: &client.id,
                    client_id: &client.id,
                    address: caller.address,
                    outcome: "refused",
                    detail: json!({ "reason": "wrong registration access token" }).to_string(),
                },
            )
            .await?;
            Err(RegistrationError::InvalidToken(
                "invalid registration access token",
            ))
        }
        // RFC 7592 §2.1: an unknown (or deleted) client is answered 401 as well.
        _ => Err(RegistrationError::InvalidToken(
            "invalid registration access token",
        )),
    }
}

async fn record_success(
    ctx: &Ctx<'_>,
    client_id: &str,
    caller: &Caller<'_>,
    action: &str,
    now: i64,
) -> Result<()> {
    record(
        ctx,
        now,
        NewEvent {
            actor: &format!("client:{client_id}"),
            action,
            subject: client_id,
            client_id,
            address: caller.address,
            outcome: "success",
            detail: "{}".into(),
        },
    )
    .await
}

fn stored_metadata(reg: &ClientRegistration) -> Result<Map<String, Value>> {
    match serde_json::from_str(&reg.metadata) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(anyhow::anyhow!("stored registration metadata is not an object").into()),
    }
}

/// RFC 7592 §2.1: reads the registration. The registration access token is rotated (only its hash is
/// kept, so the response can carry no other): the new one is in the response, the old one is spent.
pub async fn read(ctx: &Ctx<'_>, client_id: &str, caller: Caller<'_>, now: i64) -> Result<Value> {
    let (client, reg) = authorised(ctx, client_id, &caller, "client.registration.read", now).await?;
    let access_token = ctx.rng.token();
    if !ctx
        .db
        .rotate_registration_access_token(
            &client.id,
            &reg.access_token_hash,
            &crypto::token_hash(&access_token),
            now,
        )
        .await?
    {
        return Err(RegistrationError::InvalidToken(
            "invalid registration access token",
        ));
    }
    record_success(ctx, &client.id, &caller, "client.registration.read", now).await?;
    Ok(information(
        ctx,
        &client.id,
        reg.issued_at,
        None,
        client.secret_hash.is_some(),
        &access_token,
        &stored_metadata(&reg)?,
    ))
}

/// RFC 7592 §2.2: replaces the registration with the one in `body`, validated as a new registration.
/// The body carries the client's `client_id`; a `client_secret` in it must be the current one (the
/// client cannot choose its secret). A secret is issued only when the client newly needs one.
pub async fn update(
    ctx: &Ctx<'_>,
    client_id: &str,
    caller: Caller<'_>,
    body: &Value,
    now: i64,
) -> Result<Value> {
    let (client, reg) = authorised(ctx, client_id, &caller, "client.registration.update", now).await?;
    let outcome = replace(ctx, &client, &reg, body, now).await;
    let (updated, secret, access_token, metadata) = match outcome {
        Ok(done) => done,
        Err(RegistrationError::Metadata(e)) => {
            record(
                ctx,
                now,
                NewEvent {
                    actor: &format!("client:{}", client.id),
                    action: "client.registration.update",
                    subject: &client.id,
                    client_id: &client.id,
                    address: caller.address,
                    outcome: "invalid",
                    detail: json!({ "error": e.code }).to_string(),
                },
            )
            .await?;
            return Err(e.into());
        }
        Err(e) => return Err(e),
    };
    record_success(ctx, &client.id, &caller, "client.registration.update", now).await?;
    Ok(information(
        ctx,
        &client.id,
        reg.issued_at,
        secret.as_deref(),
        updated.secret_hash.is_some(),
        &access_token,
        &metadata,
    ))
}

async fn replace(
    ctx: &Ctx<'_>,
    client: &Client,
    reg: &ClientRegistration,
    body: &Value,
    now: i64,
) -> Result<(Client, Option<String>, String, Map<String, Value>)> {
    match body.get("client_id").and_then(Value::as_str) {
        Some(id) if id == client.id => {}
        _ => {
            return Err(MetadataError::metadata("client_id", "must be this client's client_id").into());
        }
    }
    if let Some(presented) = body.get("client_secret").filter(|v| !v.is_null()) {
        let presented = crypto::token_hash(presented.as_str().unwrap_or_default());
        let current = client.secret_hash.clone().unwrap_or_default();
        if !crypto::ct_eq(presented.as_bytes(), current.as_bytes()) {
            return Err(MetadataError::metadata(
                "client_secret",
                "must be the currently issued secret (a client cannot choose its secret)",
            )
            .into());
        }
    }
    let registration = metadata::validate(body)?;
    metadata::check_fetch_target(&registration, ctx.guard)?;
    let metadata::Registration {
        client: new,
        metadata: registered,
    } = registration;
    let public = client.subject_type == SubjectType::Public;
    if new.public_subject != public {
        return Err(MetadataError::metadata("subject_type", "cannot change after registration").into());
    }
    // Pairwise subjects are derived from the sector: moving hosts would hand the app other identifiers.
    // (A loopback app registered before sectors per loopback client keeps the shared host sector.)
    let stays = new.sector.as_deref().is_some_and(|s| {
        s == client.sector || crate::services::registry::sector_for(s, &client.id) == client.sector
    });
    if !public && !stays {
        return Err(MetadataError::redirect(
            "redirect_uris",
            "must stay on the registered host (pairwise identifiers depend on it); register a new client",
        )
        .into());
    }
    let mut secret = None;
    let secret_hash = match new.auth_method {
        AuthMethod::PrivateKeyJwt => None,
        _ => match &client.secret_hash {
            Some(h) => Some(h.clone()),
            None => {
                let s = ctx.rng.token();
                let h = crypto::token_hash(&s);
                secret = Some(s);
                Some(h)
            }
        },
    };
    let updated = Client {
        name: new.name,
        secret_hash,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        scopes: new.scopes,
        grant_types: new.grant_types,
        auth_method: new.auth_method,
        jwks: new.jwks,
        jwks_uri: new.jwks_uri,
        id_token_alg: new.id_token_alg,
        backchannel_logout_uri: new.backchannel_logout_uri,
        ..client.clone()
    };
    let access_token = ctx.rng.token();
    let replaced = ctx
        .db
        .replace_registered_client(
            &updated,
            &Value::Object(registered.clone()).to_string(),
            &reg.access_token_hash,
            &crypto::token_hash(&access_token),
            now,
        )
        .await?;
    if !replaced {
        return Err(RegistrationError::InvalidToken(
            "invalid registration access token",
        ));
    }
    Ok((updated, secret, access_token, registered))
}

/// RFC 7592 §2.3: deletes the registration. The client is disabled and every grant it holds revoked,
/// so its access and refresh tokens stop working; the registration access token dies with it.
pub async fn delete(ctx: &Ctx<'_>, client_id: &str, caller: Caller<'_>, now: i64) -> Result<()> {
    let (client, _) = authorised(ctx, client_id, &caller, "client.registration.delete", now).await?;
    if !ctx.db.deregister_client(&client.id, now).await? {
        return Err(RegistrationError::InvalidToken(
            "invalid registration access token",
        ));
    }
    record_success(ctx, &client.id, &caller, "client.registration.delete", now).await
}
