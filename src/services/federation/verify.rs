//! Checking a token an upstream signed: an ID token (OpenID Connect Core §3.1.3.7) or a logout token
//! (Back-Channel Logout 1.0 §2.6). The signature is checked with the upstream's published keys (its
//! `jwks_uri`, fetched through the guarded client) and an algorithm from a fixed list (never `none` nor
//! a MAC keyed with something public); the issuer, the audience (and `azp`), the times against the
//! injected `now`, and the nonce or the logout event are checked here. Nothing of a token is used before
//! all of this passed.

use jsonwebtoken::jwk::{KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::services::oidc::remote_jwks::RemoteJwks;
use crate::services::outbound::ClientHttp;

/// Signature algorithms accepted from upstreams.
const ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
/// Clock difference tolerated between yunid and an upstream, seconds.
pub const LEEWAY: i64 = 60;
/// Oldest `iat` accepted: a token is used right after it is made.
pub const MAX_AGE: i64 = 600;

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a signed JWT")]
    Malformed,
    #[error("signature algorithm not accepted")]
    Alg,
    #[error("no key of the upstream matches")]
    Key,
    /// The key the header names is published for another use than signatures (`use`).
    #[error("the key is not published for signatures")]
    KeyUse,
    /// The key the header names is published for another algorithm than the header's (`alg`).
    #[error("the key is published for another algorithm")]
    KeyAlg,
    #[error("the upstream's keys could not be fetched")]
    Keys,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("not issued to yunid (aud)")]
    Audience,
    #[error("authorized party (azp) is not yunid")]
    Azp,
    #[error("expired")]
    Expired,
    #[error("issued at an unacceptable time")]
    IssuedAt,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    /// RFC 9207: the upstream says it names itself in its answers, and this one does not.
    #[error("the answer does not name its issuer (iss)")]
    IssMissing,
    /// A logout token (`typ` `logout+jwt`, or its `events`) presented as an ID token.
    #[error("a logout token is not an ID token")]
    LogoutAsIdToken,
    #[error("the token's type (typ) is not logout+jwt")]
    Typ,
    /// The upstream did not authenticate the person as recently as the app asked (`auth_time`).
    #[error("the sign-in at the upstream is older than the app allows (auth_time)")]
    AuthTime,
    #[error("nonce does not match the sign-in")]
    Nonce,
    #[error("no subject")]
    Subject,
    #[error("not a logout token")]
    NotLogout,
    #[error("logout token replayed")]
    Replayed,
}

/// What a token must have been issued by and to.
pub struct Expect<'a> {
    /// `upstream:<id>`: the key cache entry.
    pub cache_key: &'a str,
    pub issuer: &'a str,
    pub jwks_uri: &'a str,
    pub client_id: &'a str,
    pub now: i64,
}

/// Checks the signature, issuer, audience and times of `token`; returns its claims.
pub async fn signed_claims(
    http: &ClientHttp,
    jwks: &RemoteJwks,
    token: &str,
    expect: &Expect<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !ALGS.contains(&header.alg) {
        return Err(TokenError::Alg);
    }
    let kid = header.kid.as_deref();
    let set = jwks
        .keys(http, expect.cache_key, expect.jwks_uri, kid, expect.now)
        .await
        .map_err(|_| TokenError::Keys)?;
    let jwk = match kid {
        Some(kid) => set.find(kid),
        // No `kid`: only an unambiguous set will do.
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or(TokenError::Key)?;
    // RFC 7517 §4.2, §4.4: a key published for encryption, or for another algorithm, does not verify.
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err(TokenError::KeyUse),
    }
    // RFC 7517 §4.3: `key_ops`, when present, must allow verifying.
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(TokenError::KeyUse);
    }
    if jwk
        .common
        .key_algorithm
        .is_some_and(|a| a != KeyAlgorithm::from(header.alg))
    {
        return Err(TokenError::KeyAlg);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::Key)?;
    let mut validation = Validation::new(header.alg);
    // Times and audience are checked below against the injected clock; the library checks the
    // signature and the algorithm.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|_| TokenError::Signature)?;
    let claims = data.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(TokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(TokenError::Audience);
    }
    // Core §3.1.3.7 items 4 and 5: with several audiences `azp` must be present; when present it must
    // name yunid.
    match claims.get("azp") {
        Some(azp) if azp.as_str() != Some(expect.client_id) => return Err(TokenError::Azp),
        None if audiences.len() > 1 => return Err(TokenError::Azp),
        _ => {}
    }
    let now = expect.now;
    // Required and a number (RFC 7519 NumericDate), for ID tokens and logout tokens alike
    // (Back-Channel Logout 1.0 §2.4 requires `exp` since its errata; review F10).
    match claims.get("exp").map(|e| e.as_f64().map(|f| f.floor() as i64)) {
        Some(Some(exp)) if exp + LEEWAY <= now => return Err(TokenError::Expired),
        Some(Some(_)) => {}
        Some(None) | None => return Err(TokenError::Expired),
    }
    match claims.get("iat").and_then(Value::as_i64) {
        Some(iat) if iat <= now + LEEWAY && iat >= now - MAX_AGE => {}
        _ => return Err(TokenError::IssuedAt),
    }
    // RFC 7519 §4.1.5, at the injected clock with the same leeway; present but not a number: refused.
    match claims.get("nbf").map(Value::as_i64) {
        None => {}
        Some(Some(nbf)) if nbf <= now + LEEWAY => {}
        Some(_) => return Err(TokenError::NotYetValid),
    }
    Ok(claims)
}

/// An ID token issued for the sign-in whose nonce hashes to `nonce_hash`.
pub async fn id_token(
    http: &ClientHttp,
    jwks: &RemoteJwks,
    token: &str,
    expect: &Expect<'_>,
    nonce_hash: &str,
) -> Result<Map<String, Value>, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.typ.as_deref().is_some_and(is_logout_typ) {
        return Err(TokenError::LogoutAsIdToken);
    }
    let claims = signed_claims(http, jwks, token, expect).await?;
    // Back-Channel Logout 1.0 §2.4: a logout token carries `events`; an ID token never does.
    if claims.contains_key("events") {
        return Err(TokenError::LogoutAsIdToken);
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(TokenError::Nonce)?;
    let presented = crate::crypto::token_hash(nonce);
    if !crate::crypto::ct_eq(presented.as_bytes(), nonce_hash.as_bytes()) {
        return Err(TokenError::Nonce);
    }
    subject(&claims)?;
    Ok(claims)
}

/// Whether a JWT `typ` names a logout token (RFC 7515 §4.1.9: `application/` may be left out, case
/// does not matter).
fn is_logout_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("logout+jwt") || typ.eq_ignore_ascii_case("application/logout+jwt")
}

/// A logout token (Back-Channel Logout 1.0 §2.4): `typ` `logout+jwt` when a `typ` is given, the logout
/// event, a `sub` or a `sid`, a `jti`, an `exp`, and no `nonce` (so an ID token is never one).
pub async fn logout_token(
    http: &ClientHttp,
    jwks: &RemoteJwks,
    token: &str,
    expect: &Expect<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.typ.as_deref().is_some_and(|t| !is_logout_typ(t)) {
        return Err(TokenError::Typ);
    }
    let claims = signed_claims(http, jwks, token, expect).await?;
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|e| e.get(LOGOUT_EVENT).is_some_and(Value::is_object));
    let has_target = ["sub", "sid"].iter().any(|c| {
        claims
            .get(*c)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    });
    let has_jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty());
    if !has_event || !has_target || !has_jti || claims.contains_key("nonce") {
        return Err(TokenError::NotLogout);
    }
    Ok(claims)
}

/// The token's `sub`: present, not empty, at most 255 characters (Core §2).
pub fn subject(claims: &Map<String, Value>) -> Result<&str, TokenError> {
    claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or(TokenError::Subject)
}

#[cfg(test)]
mod tests {
    use super::is_logout_typ;

    #[test]
    fn logout_typ_is_matched_with_or_without_its_media_type_prefix() {
        assert!(is_logout_typ("logout+jwt") && is_logout_typ("application/logout+JWT"));
        assert!(!is_logout_typ("JWT") && !is_logout_typ("at+jwt"));
    }
}
