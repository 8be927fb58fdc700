//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), gated by initial
//! access tokens that a super admin issues. Time is passed in; the HTTP layer only parses and renders.

mod manage;
pub mod metadata;
mod tokens;

use serde_json::{Map, Value, json};

use crate::crypto;
use crate::crypto::Random;
use crate::services::outbound::Guard;
use crate::services::registry::{NewClient, Registry};
use crate::store::Db;
use crate::store::audit::NewEvent;
use crate::store::registration::ClientRegistration;

pub use manage::{delete, read, update};
pub use metadata::MetadataError;
pub use tokens::{DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, MAX_TOKEN_USES, TokenRequest, new_token, unusable};

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

pub(crate) type Result<T, E = RegistrationError> = std::result::Result<T, E>;
/// Who made a registration call, for the audit trail.
/// What dynamic registration needs; app.rs builds it.
pub struct Ctx<'a> {
    pub db: &'a Db,
    /// The issuer, which registration client URIs are built on.
    pub issuer: &'a url::Url,
    /// Where URLs an app registers may point (nothing internal).
    pub guard: &'a Guard,
    pub registry: Registry<'a>,
    pub rng: &'a dyn Random,
}

pub struct Caller<'a> {
    pub bearer: Option<&'a str>,
    pub address: &'a str,
}

pub(crate) async fn record(ctx: &Ctx<'_>, now: i64, e: NewEvent<'_>) -> Result<()> {
    ctx.db.append_audit(&e, now).await?;
    Ok(())
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3).
pub(crate) fn information(
    ctx: &Ctx<'_>,
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
        client_uri(ctx, client_id).into(),
    );
    Value::Object(out)
}

pub fn client_uri(ctx: &Ctx<'_>, client_id: &str) -> String {
    let mut url = ctx.issuer.clone();
    let base = ctx.issuer.path().trim_end_matches('/').to_owned();
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
pub async fn register(ctx: &Ctx<'_>, caller: Caller<'_>, body: &Value, now: i64) -> Result<Value> {
    let presented = caller.bearer.ok_or(RegistrationError::InvalidToken(
        "an initial access token is required",
    ))?;
    let token = ctx
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
            ctx,
            now,
            event("client.register", "refused", json!({ "reason": why })),
        )
        .await?;
        return Err(RegistrationError::InvalidToken(why));
    }
    let reg = match metadata::validate(body).and_then(|r| {
        // Public subjects let apps join their users; only an administrator gives them.
        if r.client.public_subject {
            return Err(MetadataError::metadata(
                "subject_type",
                "public subjects are given by an administrator; register with pairwise",
            ));
        }
        metadata::check_fetch_target(&r, ctx.guard)?;
        Ok(r)
    }) {
        Ok(r) => r,
        Err(e) => {
            record(
                ctx,
                now,
                event("client.register", "invalid", json!({ "error": e.code })),
            )
            .await?;
            return Err(e.into());
        }
    };
    // Counted only now, atomically: a racing registration may have taken the last use.
    if !ctx.db.use_registration_token(&token.id, now).await? {
        record(
            ctx,
            now,
            event("client.register", "refused", json!({ "reason": "used up" })),
        )
        .await?;
        return Err(RegistrationError::InvalidToken(
            "the initial access token is used up",
        ));
    }
    let metadata = reg.metadata;
    let new = NewClient {
        department: token.department.clone(),
        ..reg.client
    };
    let (client, secret) = ctx
        .registry
        .add_client(new, now)
        .await
        .map_err(|e| MetadataError::metadata("client", e))?;
    let access_token = ctx.rng.token();
    ctx.db
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
        ctx,
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
        ctx,
        &client.id,
        now,
        secret.as_deref(),
        secret.is_some(),
        &access_token,
        &metadata,
    ))
}
