//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), gated by initial
//! access tokens that a super admin issues. Time is passed in; the HTTP layer only parses and renders.

pub mod metadata;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::crypto;
use crate::services::registry::{self, NewClient};
use crate::store::audit::NewEvent;
use crate::store::clients::{AuthMethod, Client, SubjectType};
use crate::store::registration::{ClientRegistration, RegistrationToken};

pub use metadata::MetadataError;

/// Lifetime of an initial access token when the admin gives none, seconds.
pub const DEFAULT_TOKEN_TTL: i64 = 7 * 24 * 3600;
/// Longest lifetime of an initial access token, seconds.
pub const MAX_TOKEN_TTL: i64 = 365 * 24 * 3600;
pub const MAX_TOKEN_USES: i64 = 1000;

/// Why a registration or management call fails.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// 401 `invalid_token` (RFC 6750 §3.1): the initial or registration access token is not good.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// 400 with the RFC 7591 §3.2.2 code.
    #[error("{}: {}", .0.code, .0.description)]
    Metadata(MetadataError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<MetadataError> for RegistrationError {
    fn from(e: MetadataError) -> Self {
        RegistrationError::Metadata(e)
    }
}

impl From<sqlx::Error> for RegistrationError {
    fn from(e: sqlx::Error) -> Self {
        RegistrationError::Internal(e.into())
    }
}

type Result<T, E = RegistrationError> = std::result::Result<T, E>;

/// What an admin asks for when issuing an initial access token.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub expires_in: Option<i64>,
    pub max_uses: Option<i64>,
    pub department: String,
    pub note: String,
}

/// A new initial access token: the secret (shown once) and the stored row (hash only). An invalid
/// request names the field.
pub fn new_token(
    req: TokenRequest,
    created_by: &str,
    now: i64,
) -> Result<(String, RegistrationToken), (&'static str, String)> {
    let ttl = req.expires_in.unwrap_or(DEFAULT_TOKEN_TTL);
    if !(60..=MAX_TOKEN_TTL).contains(&ttl) {
        return Err((
            "expires_in",
            format!("expires_in is 60 to {MAX_TOKEN_TTL} seconds"),
        ));
    }
    let max_uses = req.max_uses.unwrap_or(1);
    if !(1..=MAX_TOKEN_USES).contains(&max_uses) {
        return Err(("max_uses", format!("max_uses is 1 to {MAX_TOKEN_USES}")));
    }
    if req.note.chars().count() > 200 {
        return Err(("note", "note is at most 200 characters".into()));
    }
    if req.department.chars().count() > 100 {
        return Err(("department", "department is at most 100 characters".into()));
    }
    let secret = crypto::random_token();
    let row = RegistrationToken {
        id: uuid::Uuid::now_v7().simple().to_string(),
        token_hash: crypto::token_hash(&secret),
        department: req.department,
        note: req.note,
        max_uses,
        uses: 0,
        expires_at: Some(now + ttl),
        revoked_at: None,
        created_by: created_by.to_owned(),
        created_at: now,
    };
    Ok((secret, row))
}

/// Why a known initial access token cannot be used now, if it cannot.
pub fn unusable(t: &RegistrationToken, now: i64) -> Option<&'static str> {
    if t.revoked_at.is_some() {
        Some("the initial access token was revoked")
    } else if t.expires_at.is_some_and(|e| e <= now) {
        Some("the initial access token has expired")
    } else if t.uses >= t.max_uses {
        Some("the initial access token is used up")
    } else {
        None
    }
}

/// Who made a registration call, for the audit trail.
pub struct Caller<'a> {
    pub bearer: Option<&'a str>,
    pub address: &'a str,
}

async fn record(app: &App, now: i64, e: NewEvent<'_>) -> Result<()> {
    app.db.append_audit(&e, now).await?;
    Ok(())
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3).
fn information(
    app: &App,
    client_id: &str,
    issued_at: i64,
    secret: Option<&str>,
    has_secret: bool,
    access_token: &str,
    metadata: &Map<String, Value>,
) -> Value {
    let mut out = metadata.clone();
    out.insert("client_id".into(), client_id.into());
    out.insert("client_id_issued_at".into(), issued_at.into());
    if let Some(s) = secret {
        out.insert("client_secret".into(), s.into());
    }
    if has_secret {
        // The secret does not expire.
        out.insert("client_secret_expires_at".into(), 0.into());
    }
    out.insert("registration_access_token".into(), access_token.into());
    out.insert(
        "registration_client_uri".into(),
        client_uri(app, client_id).into(),
    );
    Value::Object(out)
}

pub fn client_uri(app: &App, client_id: &str) -> String {
    let mut url = app.config.issuer.clone();
    let base = app.config.issuer.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/connect/register/"));
    url.path_segments_mut()
        .map(|mut s| {
            s.pop();
            s.push(client_id);
        })
        .ok();
    url.to_string()
}

/// RFC 7591 §3: registers a client with an initial access token; the response carries the client's
/// credentials and its registration access token, each shown only this once.
pub async fn register(app: &App, caller: Caller<'_>, body: &Value, now: i64) -> Result<Value> {
    let presented = caller.bearer.ok_or(RegistrationError::InvalidToken(
        "an initial access token is required",
    ))?;
    let token = app
        .db
        .registration_token_by_hash(&crypto::token_hash(presented))
        .await?
        .ok_or(RegistrationError::InvalidToken("unknown initial access token"))?;
    let actor = format!("registration_token:{}", token.id);
    let event = |action, outcome, detail: Value| NewEvent {
        actor: &actor,
        action,
        subject: "",
        client_id: "",
        address: caller.address,
        outcome,
        detail: detail.to_string(),
    };
    if let Some(why) = unusable(&token, now) {
        record(
            app,
            now,
            event("client.register", "refused", json!({ "reason": why })),
        )
        .await?;
        return Err(RegistrationError::InvalidToken(why));
    }
    let reg = match metadata::validate(body) {
        Ok(r) => r,
        Err(e) => {
            record(
                app,
                now,
                event("client.register", "invalid", json!({ "error": e.code })),
            )
            .await?;
            return Err(e.into());
        }
    };
    // Counted only now, atomically: a racing registration may have taken the last use.
    if !app.db.use_registration_token(&token.id, now).await? {
        record(
            app,
            now,
            event("client.register", "refused", json!({ "reason": "used up" })),
        )
        .await?;
        return Err(RegistrationError::InvalidToken(
            "the initial access token is used up",
        ));
    }
    let metadata = reg.metadata.clone();
    let new = NewClient {
        name: reg.name,
        redirect_uris: reg.redirect_uris,
        post_logout_redirect_uris: reg.post_logout_redirect_uris,
        scopes: reg.scopes,
        grant_types: reg.grant_types,
        auth_method: reg.auth_method,
        jwks: reg.jwks,
        id_token_alg: reg.id_token_alg,
        public_subject: reg.public_subject,
        sector: Some(reg.sector),
        backchannel_logout_uri: reg.backchannel_logout_uri,
        min_acr: 1,
        matters: Vec::new(),
        department: token.department.clone(),
    };
    let (client, secret) = registry::add_client(app, new)
        .await
        .map_err(|e| MetadataError::metadata("client", e))?;
    let access_token = crypto::random_token();
    app.db
        .insert_client_registration(
            &ClientRegistration {
                client_id: client.id.clone(),
                access_token_hash: crypto::token_hash(&access_token),
                metadata: Value::Object(metadata.clone()).to_string(),
                initial_token_id: token.id.clone(),
                issued_at: now,
            },
            now,
        )
        .await?;
    record(
        app,
        now,
        NewEvent {
            subject: &client.id,
            client_id: &client.id,
            ..event(
                "client.register",
                "success",
                json!({ "department": token.department, "uses": token.uses + 1 }),
            )
        },
    )
    .await?;
    Ok(information(
        app,
        &client.id,
        now,
        secret.as_deref(),
        secret.is_some(),
        &access_token,
        &metadata,
    ))
}

/// The client and its registration, when `presented` is its registration access token (compared in
/// constant time; an unknown client costs the same comparison). Anything else is `invalid_token`,
/// recorded when the client exists.
async fn authorised(
    app: &App,
    client_id: &str,
    caller: &Caller<'_>,
    action: &str,
    now: i64,
) -> Result<(Client, ClientRegistration)> {
    let presented = crypto::token_hash(caller.bearer.unwrap_or_default());
    let reg = app.db.client_registration(client_id).await?;
    let stored = reg
        .as_ref()
        .map(|r| r.access_token_hash.clone())
        .unwrap_or_else(|| crypto::token_hash("no such registration"));
    let matches = crypto::ct_eq(presented.as_bytes(), stored.as_bytes()) && caller.bearer.is_some();
    let client = match &reg {
        Some(_) => app.db.client(client_id).await?,
        None => None,
    };
    match (reg, client) {
        (Some(reg), Some(client)) if matches => Ok((client, reg)),
        (Some(_), Some(client)) => {
            record(
                app,
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
    app: &App,
    client_id: &str,
    caller: &Caller<'_>,
    action: &str,
    now: i64,
) -> Result<()> {
    record(
        app,
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
pub async fn read(app: &App, client_id: &str, caller: Caller<'_>, now: i64) -> Result<Value> {
    let (client, reg) = authorised(app, client_id, &caller, "client.registration.read", now).await?;
    let access_token = crypto::random_token();
    if !app
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
    record_success(app, &client.id, &caller, "client.registration.read", now).await?;
    Ok(information(
        app,
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
pub async fn update(app: &App, client_id: &str, caller: Caller<'_>, body: &Value, now: i64) -> Result<Value> {
    let (client, reg) = authorised(app, client_id, &caller, "client.registration.update", now).await?;
    let outcome = replace(app, &client, &reg, body, now).await;
    let (updated, secret, access_token, metadata) = match outcome {
        Ok(done) => done,
        Err(RegistrationError::Metadata(e)) => {
            record(
                app,
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
    record_success(app, &client.id, &caller, "client.registration.update", now).await?;
    Ok(information(
        app,
        &client.id,
        reg.issued_at,
        secret.as_deref(),
        updated.secret_hash.is_some(),
        &access_token,
        &metadata,
    ))
}

async fn replace(
    app: &App,
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
    let new = metadata::validate(body)?;
    let public = client.subject_type == SubjectType::Public;
    if new.public_subject != public {
        return Err(MetadataError::metadata("subject_type", "cannot change after registration").into());
    }
    // Pairwise subjects are derived from the sector: moving hosts would hand the app other identifiers.
    if !public && new.sector != client.sector {
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
                let s = crypto::random_token();
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
        id_token_alg: new.id_token_alg,
        backchannel_logout_uri: new.backchannel_logout_uri,
        ..client.clone()
    };
    let access_token = crypto::random_token();
    let replaced = app
        .db
        .replace_registered_client(
            &updated,
            &Value::Object(new.metadata.clone()).to_string(),
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
    Ok((updated, secret, access_token, new.metadata))
}

/// RFC 7592 §2.3: deletes the registration. The client is disabled and every grant it holds revoked,
/// so its access and refresh tokens stop working; the registration access token dies with it.
pub async fn delete(app: &App, client_id: &str, caller: Caller<'_>, now: i64) -> Result<()> {
    let (client, _) = authorised(app, client_id, &caller, "client.registration.delete", now).await?;
    if !app.db.deregister_client(&client.id, now).await? {
        return Err(RegistrationError::InvalidToken(
            "invalid registration access token",
        ));
    }
    record_success(app, &client.id, &caller, "client.registration.delete", now).await
}
