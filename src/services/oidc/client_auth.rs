//! Client authentication at the token, introspection, revocation and PAR endpoints
//! (RFC 6749 §2.3, OIDC Core §9): `client_secret_basic`, `client_secret_post`, `private_key_jwt`.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;

use crate::crypto;
use crate::services::oidc::remote_jwks::RemoteJwks;
use crate::services::outbound::ClientHttp;
use crate::store::Db;
use crate::store::clients::{AuthMethod, Client};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest lifetime accepted for a client assertion.
const MAX_ASSERTION_LIFETIME: i64 = 600;
/// Clock skew tolerated on a client assertion's `exp` and `nbf`.
const LEEWAY: i64 = 30;

/// What the request presented as client credentials.
#[derive(Debug, Default, Clone)]
pub struct Presented {
    /// From `Authorization: Basic` (already URL-decoded, RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
    /// The form's `client_id`, `client_secret`, `client_assertion_type` and `client_assertion`.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
}

/// Why a client was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// The request itself is wrong (RFC 6749 §5.2 `invalid_request`).
    #[error("{0}")]
    Request(&'static str),
    /// The client did not prove who it is (RFC 6749 §5.2 `invalid_client`, 401).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ClientAuthError {
    fn from(e: sqlx::Error) -> Self {
        ClientAuthError::Internal(e.into())
    }
}

fn fail(m: &str) -> ClientAuthError {
    ClientAuthError::Failed(m.to_owned())
}

/// What authenticating a client needs.
pub struct Ctx<'a> {
    pub db: &'a Db,
    /// Keys of clients registered with a `jwks_uri`, as this node fetched them, and how it fetches.
    pub jwks: &'a RemoteJwks,
    pub http: &'a ClientHttp,
    /// The `aud` values that name yunid in a client assertion (RFC 7523 §3, RFC 9126 §2): the issuer,
    /// the token endpoint, the PAR endpoint.
    pub audiences: Vec<String>,
}

/// Parses an `Authorization: Basic` header value.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// Authenticates the client by exactly one method: the one it registered.
pub async fn authenticate(
    ctx: &Ctx<'_>,
    presented: &Presented,
    now: i64,
) -> Result<Arc<Client>, ClientAuthError> {
    let post_id = presented.client_id.as_deref();
    let post_secret = presented.client_secret.as_deref();
    let assertion_type = presented.assertion_type.as_deref();
    let assertion = presented.assertion.as_deref();
    let methods = [
        presented.basic.is_some(),
        post_secret.is_some(),
        assertion.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(ClientAuthError::Request(
            "more than one client authentication method used",
        ));
    }
    if let Some((id, secret)) = &presented.basic {
        if post_id.is_some_and(|p| p != id) {
            return Err(ClientAuthError::Request(
                "client_id does not match the Authorization header",
            ));
        }
        return by_secret(ctx.db, id, secret, AuthMethod::ClientSecretBasic).await;
    }
    if let Some(secret) = post_secret {
        let id = post_id.ok_or_else(|| fail("client_id is missing"))?;
        return by_secret(ctx.db, id, secret, AuthMethod::ClientSecretPost).await;
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(ASSERTION_TYPE) {
            return Err(fail("unsupported client_assertion_type"));
        }
        return by_assertion(ctx, post_id, assertion, now).await;
    }
    Err(fail("client authentication is required"))
}

async fn by_secret(
    db: &Db,
    id: &str,
    secret: &str,
    method: AuthMethod,
) -> Result<Arc<Client>, ClientAuthError> {
    let client = db.client(id).await?;
    let presented = crypto::token_hash(secret);
    // Compare against something even for unknown clients, so timing does not tell which exist.
    let stored = client
        .as_ref()
        .and_then(|c| c.secret_hash.clone())
        .unwrap_or_else(|| crypto::token_hash("no such client"));
    let matches = crypto::ct_eq(presented.as_bytes(), stored.as_bytes());
    match client {
        Some(c) if matches && !c.disabled && c.secret_hash.is_some() => {
            if c.auth_method != method {
                return Err(fail(
                    "this client is registered for another authentication method",
                ));
            }
            Ok(c)
        }
        _ => Err(fail("client authentication failed")),
    }
}

/// The claims of a client assertion (RFC 7523 §3).
#[derive(Debug, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    pub jti: String,
}

/// Reads a client assertion without trusting it yet: an asymmetric algorithm we accept, no key of its
/// own (`jwk`, `jku`, `x5u`), and the claims that name the client. The signature is checked afterwards,
/// against the keys the client registered.
pub fn read_assertion(assertion: &str) -> Result<(jsonwebtoken::Header, AssertionClaims), ClientAuthError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| fail("client_assertion is malformed"))?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::EdDSA
    ) {
        return Err(fail("client_assertion algorithm not accepted"));
    }
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() {
        return Err(fail("client_assertion must not carry its own key"));
    }
    let payload = assertion
        .split('.')
        .nth(1)
        .ok_or_else(|| fail("client_assertion is malformed"))?;
    let bytes = crypto::b64url_decode(payload).ok_or_else(|| fail("client_assertion is malformed"))?;
    let claims =
        serde_json::from_slice(&bytes).map_err(|_| fail("client_assertion claims are incomplete"))?;
    Ok((header, claims))
}

async fn by_assertion(
    ctx: &Ctx<'_>,
    post_id: Option<&str>,
    assertion: &str,
    now: i64,
) -> Result<Arc<Client>, ClientAuthError> {
    // Who claims to be the client: `iss` of the (not yet verified) assertion, which must match `client_id`.
    let (header, unverified) = read_assertion(assertion)?;
    let alg = header.alg;
    if post_id.is_some_and(|p| p != unverified.iss) {
        return Err(fail("client_id does not match the assertion"));
    }
    let client = ctx
        .db
        .client(&unverified.iss)
        .await?
        .filter(|c| !c.disabled && c.auth_method == AuthMethod::PrivateKeyJwt)
        .ok_or_else(|| fail("client authentication failed"))?;
    let jwks: Arc<JwkSet> = match (&client.jwks, &client.jwks_uri) {
        (Some(j), _) => serde_json::from_str(j)
            .map(Arc::new)
            .map_err(|_| fail("client has no usable keys"))?,
        (None, Some(uri)) => ctx
            .jwks
            .keys(ctx.http, &client.id, uri, header.kid.as_deref(), now)
            .await
            .map_err(|e| fail(&e))?,
        (None, None) => return Err(fail("client has no usable keys")),
    };
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| fail("no matching client key"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| fail("client key unusable"))?;
    let mut validation = Validation::new(alg);
    // RFC 7523 §3, RFC 9126 §2: the issuer, the token endpoint, or the PAR endpoint identify yunid.
    validation.set_audience(&ctx.audiences);
    validation.set_issuer(&[&client.id]);
    validation.sub = Some(client.id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    // The times are checked below against yunid's clock (`now`), not the library's own reading of it.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| fail(&format!("client_assertion rejected: {e}")))?;
    let claims = data.claims;
    check_times(&claims, now)?;
    if claims.iss != client.id || claims.sub != client.id {
        return Err(fail("client_assertion iss and sub must be the client_id"));
    }
    if !ctx
        .db
        .remember_assertion_jti(&client.id, &claims.jti, claims.exp + 60)
        .await?
    {
        return Err(fail("client_assertion replayed (jti seen before)"));
    }
    Ok(client)
}

/// RFC 7523 §3: expired (`exp`), not yet valid (`nbf`), issued in the future (`iat`), or valid for
/// longer than yunid accepts, each judged at `now` with [`LEEWAY`] for clock skew.
fn check_times(claims: &AssertionClaims, now: i64) -> Result<(), ClientAuthError> {
    if claims.exp < now - LEEWAY {
        return Err(fail("client_assertion rejected: ExpiredSignature"));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY) {
        return Err(fail("client_assertion rejected: ImmatureSignature"));
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME || claims.iat.is_some_and(|iat| iat > now + 60) {
        return Err(fail("client_assertion lifetime too long"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, nbf: Option<i64>, iat: Option<i64>) -> AssertionClaims {
        AssertionClaims {
            iss: "app".into(),
            sub: "app".into(),
            exp,
            iat,
            nbf,
            jti: "j".into(),
        }
    }

    #[test]
    fn assertion_times_are_judged_at_the_given_now() {
        let now = 1_000_000;
        assert!(check_times(&claims(now + 60, None, Some(now)), now).is_ok());
        // Within the leeway, then past it.
        assert!(check_times(&claims(now - LEEWAY, None, None), now).is_ok());
        let expired = check_times(&claims(now - LEEWAY - 1, None, None), now).unwrap_err();
        assert!(expired.to_string().contains("ExpiredSignature"));
        // The same assertion, judged a little earlier, is fine: only `now` decides.
        assert!(check_times(&claims(now - LEEWAY - 1, None, None), now - 100).is_ok());
        let early = check_times(&claims(now + 400, Some(now + 300), None), now).unwrap_err();
        assert!(early.to_string().contains("ImmatureSignature"));
        assert!(check_times(&claims(now + 400, None, Some(now + 300)), now).is_err());
        assert!(check_times(&claims(now + 86_400, None, None), now).is_err());
    }
}
