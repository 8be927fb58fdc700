//! Client authentication at the token, introspection, revocation and PAR endpoints
//! (RFC 6749 §2.3, OIDC Core §9): `client_secret_basic`, `client_secret_post`, `private_key_jwt`.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;

use crate::app::App;
use crate::crypto;
use crate::error::{Error, OAuthError};
use crate::services::params::Params;
use crate::store::clients::{AuthMethod, Client};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest lifetime accepted for a client assertion.
const MAX_ASSERTION_LIFETIME: i64 = 600;

/// What the request presented as client credentials.
#[derive(Default)]
pub struct Presented {
    /// From `Authorization: Basic` (already URL-decoded, RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
}

fn fail(m: &str) -> Error {
    Error::ClientAuth(m.to_owned())
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
    app: &App,
    presented: &Presented,
    params: &Params,
    now: i64,
) -> Result<Arc<Client>, Error> {
    let post_id = params.get("client_id")?;
    let post_secret = params.get("client_secret")?;
    let assertion_type = params.get("client_assertion_type")?;
    let assertion = params.get("client_assertion")?;
    let methods = [
        presented.basic.is_some(),
        post_secret.is_some(),
        assertion.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(OAuthError::invalid_request("more than one client authentication method used").into());
    }
    if let Some((id, secret)) = &presented.basic {
        if post_id.is_some_and(|p| p != id) {
            return Err(
                OAuthError::invalid_request("client_id does not match the Authorization header").into(),
            );
        }
        return by_secret(app, id, secret, AuthMethod::ClientSecretBasic).await;
    }
    if let Some(secret) = post_secret {
        let id = post_id.ok_or_else(|| fail("client_id is missing"))?;
        return by_secret(app, id, secret, AuthMethod::ClientSecretPost).await;
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(ASSERTION_TYPE) {
            return Err(fail("unsupported client_assertion_type"));
        }
        return by_assertion(app, post_id, assertion, now).await;
    }
    Err(fail("client authentication is required"))
}

async fn by_secret(app: &App, id: &str, secret: &str, method: AuthMethod) -> Result<Arc<Client>, Error> {
    let client = app.db.client(id).await?;
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
    pub jti: String,
}

/// Reads a client assertion without trusting it yet: an asymmetric algorithm we accept, no key of its
/// own (`jwk`, `jku`, `x5u`), and the claims that name the client. The signature is checked afterwards,
/// against the keys the client registered.
pub fn read_assertion(assertion: &str) -> Result<(jsonwebtoken::Header, AssertionClaims), Error> {
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
    app: &App,
    post_id: Option<&str>,
    assertion: &str,
    now: i64,
) -> Result<Arc<Client>, Error> {
    // Who claims to be the client: `iss` of the (not yet verified) assertion, which must match `client_id`.
    let (header, unverified) = read_assertion(assertion)?;
    let alg = header.alg;
    if post_id.is_some_and(|p| p != unverified.iss) {
        return Err(fail("client_id does not match the assertion"));
    }
    let client = app
        .db
        .client(&unverified.iss)
        .await?
        .filter(|c| !c.disabled && c.auth_method == AuthMethod::PrivateKeyJwt)
        .ok_or_else(|| fail("client authentication failed"))?;
    let jwks: Arc<JwkSet> = match (&client.jwks, &client.jwks_uri) {
        (Some(j), _) => serde_json::from_str(j)
            .map(Arc::new)
            .map_err(|_| fail("client has no usable keys"))?,
        (None, Some(uri)) => app
            .client_jwks
            .keys(&app.client_http, &client.id, uri, header.kid.as_deref(), now)
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
    validation.set_audience(&[
        app.config.iss().to_owned(),
        app.config.endpoint("/token"),
        app.config.endpoint("/par"),
        app.config.issuer.as_str().to_owned(),
    ]);
    validation.set_issuer(&[&client.id]);
    validation.sub = Some(client.id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 30;
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| fail(&format!("client_assertion rejected: {e}")))?;
    let claims = data.claims;
    if claims.iss != client.id || claims.sub != client.id {
        return Err(fail("client_assertion iss and sub must be the client_id"));
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME || claims.iat.is_some_and(|iat| iat > now + 60) {
        return Err(fail("client_assertion lifetime too long"));
    }
    if claims.exp + 30 < now {
        return Err(fail("client_assertion expired"));
    }
    if !app
        .db
        .remember_assertion_jti(&client.id, &claims.jti, claims.exp + 60)
        .await?
    {
        return Err(fail("client_assertion replayed (jti seen before)"));
    }
    Ok(client)
}
