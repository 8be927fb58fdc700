//! Issuing and checking tokens: JWT access tokens (RFC 9068, ES256), ID tokens (OIDC Core §2), and
//! opaque rotating refresh tokens stored as hashes.

use serde_json::{Value, json};

use crate::app::App;
use crate::crypto;
use crate::error::{Error, OAuthError};
use crate::keys::Alg;
use crate::services::oidc::claims;
use crate::store::clients::Client;
use crate::store::families::Family;

pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// OIDC Core §3.1.3.6: left half of the hash of the ASCII value, with the hash of the ID token's `alg`.
pub fn half_hash(alg: Alg, value: &str) -> String {
    let digest = match alg {
        Alg::RS256 | Alg::ES256 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes()),
        Alg::EdDSA => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, value.as_bytes()),
    };
    let bytes = digest.as_ref();
    crypto::b64url(&bytes[..bytes.len() / 2])
}

/// Signs an access token. `family` is absent for client-credentials tokens.
pub fn access_token(
    app: &App,
    client: &Client,
    sub: &str,
    scope: &str,
    family: Option<&Family>,
    actor: Option<&str>,
    now: i64,
) -> Result<String, Error> {
    let mut claims = json!({
        "iss": app.config.iss(),
        "sub": sub,
        "aud": client.id,
        "client_id": client.id,
        "iat": now,
        "exp": now + app.config.access_token_ttl,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "scope": scope,
    });
    if let Some(f) = family {
        claims["fid"] = json!(f.id);
        claims["auth_time"] = json!(f.auth_time);
        claims["acr"] = json!(f.acr.to_string());
        claims["amr"] = json!(f.amr.split(' ').collect::<Vec<_>>());
    }
    // RFC 8693 §4.1: the person acting for the organisation that is the subject.
    if let Some(actor) = actor {
        claims["act"] = json!({ "sub": actor });
    }
    Ok(app.keys().sign(Alg::ES256, ACCESS_TOKEN_TYP, &claims)?)
}

pub struct IdTokenInput<'a> {
    pub family: &'a Family,
    pub subject: &'a claims::GrantSubject,
    /// The effective scopes of this issue (granted or narrowed by the refresh, still allowed the app).
    pub scopes: &'a [&'a str],
    pub nonce: Option<&'a str>,
    pub access_token: Option<&'a str>,
    pub code: Option<&'a str>,
    /// Licence elements for the ID token (only when the claims request asked for them there).
    pub licences: Vec<Value>,
    pub now: i64,
}

pub fn id_token(app: &App, client: &Client, input: IdTokenInput<'_>) -> Result<String, Error> {
    let f = input.family;
    let alg = client.id_token_alg;
    let mut c = json!({
        "iss": app.config.iss(),
        "sub": input.subject.sub,
        "aud": client.id,
        "iat": input.now,
        "exp": input.now + app.config.id_token_ttl,
        "auth_time": f.auth_time,
        "acr": f.acr.to_string(),
        "amr": f.amr.split(' ').collect::<Vec<_>>(),
    });
    // Per app, so that two apps cannot join their users by the session they share.
    if let Some(sid) = &f.session_sid {
        c["sid"] = json!(app.secrets.client_sid(sid, &client.id));
    }
    if let Some(nonce) = input.nonce {
        c["nonce"] = json!(nonce);
    }
    if let Some(at) = input.access_token {
        c["at_hash"] = json!(half_hash(alg, at));
    }
    if let Some(code) = input.code {
        c["c_hash"] = json!(half_hash(alg, code));
    }
    // Scope claims go to userinfo; the ID token carries those asked for in `claims.id_token`, and
    // `act`/`org` when the person acts for an organisation.
    let claims_request: Option<Value> = f.claims.as_deref().and_then(|s| serde_json::from_str(s).ok());
    let extra = claims::subject_claims(
        app,
        client,
        input.subject,
        input.scopes,
        claims_request.as_ref(),
        "id_token",
        false,
    )?;
    for (k, v) in extra {
        c[k] = v;
    }
    if let Value::Object(map) = &mut c {
        crate::services::licence::attach(map, input.licences);
    }
    Ok(app.keys().sign(alg, "JWT", &c)?)
}

/// A verified access token of ours.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub claims: Value,
    pub jti: String,
    pub client_id: String,
    pub sub: String,
    pub family_id: Option<String>,
    pub exp: i64,
}

/// Access tokens this node has already verified (signature, type, issuer), so that a resource server
/// introspecting the same token again does not pay for another ECDSA verification. An entry is used only
/// while the token is unexpired and the key that signed it is still published; the cache is emptied when
/// it reaches its bound.
#[derive(Default)]
pub struct VerifiedTokens {
    map: std::sync::Mutex<std::collections::HashMap<String, (String, AccessToken)>>,
}

const VERIFIED_TOKENS_MAX: usize = 4096;

impl VerifiedTokens {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, AccessToken)>> {
        match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Verifies signature, type, issuer and expiry; revocation is checked by the caller when it matters.
pub fn parse_access_token(app: &App, token: &str, now: i64) -> Result<AccessToken, OAuthError> {
    let bad = |m: &str| OAuthError::invalid_token(m);
    let keys = app.keys();
    if let Some((kid, at)) = app.verified_tokens.map().get(token) {
        if at.exp <= now {
            return Err(bad("token expired"));
        }
        if keys.publishes(kid) {
            return Ok(at.clone());
        }
    }
    let (header, claims) = keys.verify(token).map_err(|_| bad("token is not valid"))?;
    if header.get("typ").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYP) {
        return Err(bad("not an access token"));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(app.config.iss()) {
        return Err(bad("wrong issuer"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no expiry"))?;
    if exp <= now {
        return Err(bad("token expired"));
    }
    let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let at = AccessToken {
        jti: s("jti").ok_or_else(|| bad("no jti"))?,
        client_id: s("client_id").ok_or_else(|| bad("no client_id"))?,
        sub: s("sub").ok_or_else(|| bad("no sub"))?,
        family_id: s("fid"),
        exp,
        claims,
    };
    if let Some(kid) = header.get("kid").and_then(Value::as_str) {
        let mut map = app.verified_tokens.map();
        if map.len() >= VERIFIED_TOKENS_MAX {
            map.clear();
        }
        map.insert(token.to_owned(), (kid.to_owned(), at.clone()));
    }
    Ok(at)
}

/// When a refresh token issued now expires: after the idle limit, never after its family.
pub fn refresh_expiry(app: &App, family: &Family, now: i64) -> i64 {
    (now + app.config.refresh_idle_ttl).min(family.expires_at)
}

/// A new refresh token for a family; the database keeps its hash.
pub async fn refresh_token(app: &App, family: &Family, now: i64) -> Result<String, Error> {
    let token = crypto::random_token();
    let expires_at = refresh_expiry(app, family, now);
    app.db
        .insert_refresh(&crypto::token_hash(&token), &family.id, now, expires_at)
        .await?;
    Ok(token)
}
