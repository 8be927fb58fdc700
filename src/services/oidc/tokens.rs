//! Issuing and checking tokens: JWT access tokens (RFC 9068, ES256), ID tokens (OIDC Core §2), and
//! opaque rotating refresh tokens stored as hashes. Time is the caller's `now`; randomness its `rng`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::crypto::{self, Random, Secrets};
use crate::keys::{Alg, KeySet};
use crate::services::oidc::claims;
use crate::services::oidc::scope::ScopeSet;
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::families::Family;

pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The settings token issuance reads (from `Config`).
#[derive(Debug, Clone, Copy)]
pub struct TokenSettings<'a> {
    pub iss: &'a str,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    pub refresh_idle_ttl: i64,
}

/// What signing tokens needs: the key set, the data-protection secret (per-app `sid`), the settings.
#[derive(Clone)]
pub struct Minting<'a> {
    pub keys: Arc<KeySet>,
    pub secrets: &'a Secrets,
    pub settings: TokenSettings<'a>,
}

/// Issuing a token failed (signing, storage): an internal error, never the client's doing.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        TokenError::Internal(e.into())
    }
}

/// Why a presented access token is not accepted (RFC 6750 §3.1 `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct InvalidToken {
    pub description: &'static str,
}

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

/// What an access token is issued for.
pub struct AccessTokenInput<'a> {
    pub client: &'a Client,
    pub sub: &'a str,
    pub scope: &'a ScopeSet,
    /// Absent for client-credentials tokens.
    pub family: Option<&'a Family>,
    /// The person acting for the organisation that is the subject.
    pub actor: Option<&'a str>,
}

/// When a token issued for `family` ends: at `end`, or at the end of the grant when that comes first.
pub fn lifetime_end(end: i64, family: Option<&Family>) -> i64 {
    family.map_or(end, |f| end.min(f.expires_at))
}

/// Signs an access token.
pub fn access_token(
    m: &Minting<'_>,
    rng: &dyn Random,
    input: AccessTokenInput<'_>,
    now: i64,
) -> Result<String, TokenError> {
    let AccessTokenInput {
        client,
        sub,
        scope,
        family,
        actor,
    } = input;
    let mut jti = [0u8; 16];
    rng.fill(&mut jti);
    let mut claims = json!({
        "iss": m.settings.iss,
        "sub": sub,
        "aud": client.id,
        "client_id": client.id,
        "iat": now,
        // Never past the end of the grant (a kiosk app's short session): RFC 9068 §2.2.
        "exp": lifetime_end(now + m.settings.access_token_ttl, family),
        "jti": uuid::Builder::from_random_bytes(jti).into_uuid().simple().to_string(),
        "scope": scope.to_string(),
    });
    if let Some(f) = family {
        claims["fid"] = json!(f.id);
        claims["auth_time"] = json!(f.auth_time);
        claims["acr"] = json!(f.acr.to_string());
        claims["amr"] = json!(f.amr);
    }
    // RFC 8693 §4.1: the person acting for the organisation that is the subject.
    if let Some(actor) = actor {
        claims["act"] = json!({ "sub": actor });
    }
    Ok(m.keys.sign(Alg::ES256, ACCESS_TOKEN_TYP, &claims)?)
}

pub struct IdTokenInput<'a> {
    pub family: &'a Family,
    pub subject: &'a claims::GrantSubject,
    /// The effective scopes of this issue (granted or narrowed by the refresh, still allowed the app).
    pub scopes: &'a ScopeSet,
    pub nonce: Option<&'a str>,
    pub access_token: Option<&'a str>,
    pub code: Option<&'a str>,
    /// Licence elements for the ID token (only when the claims request asked for them there).
    pub licences: Vec<Value>,
    pub now: i64,
}

pub fn id_token(m: &Minting<'_>, client: &Client, input: IdTokenInput<'_>) -> Result<String, TokenError> {
    let f = input.family;
    let alg = client.id_token_alg;
    let mut c = json!({
        "iss": m.settings.iss,
        "sub": input.subject.sub,
        "aud": client.id,
        "iat": input.now,
        "exp": lifetime_end(input.now + m.settings.id_token_ttl, Some(f)),
        "auth_time": f.auth_time,
        "acr": f.acr.to_string(),
        "amr": f.amr,
    });
    // Per app, so that two apps cannot join their users by the session they share.
    if let Some(sid) = &f.session_sid {
        c["sid"] = json!(m.secrets.client_sid(sid, &client.id));
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
        m.secrets,
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
    Ok(m.keys.sign(alg, "JWT", &c)?)
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
/// introspecting the same token again does not pay for another ECDSA verification. Entries are keyed by
/// the token's SHA-256 (the memory of a node holds no usable bearer token). An entry is used only while
/// the token is unexpired at the caller's `now` and the key that signed it is still published; the whole
/// cache is dropped when this node hears of a revocation (its epoch, [`Verifier::revocations`], moved),
/// and at its bound expired entries go first, the rest only if that is not enough.
#[derive(Default)]
pub struct VerifiedTokens {
    map: Mutex<Verified>,
}

#[derive(Default)]
struct Verified {
    /// The revocation epoch the entries were verified under.
    epoch: u64,
    entries: HashMap<Vec<u8>, (String, AccessToken)>,
}

const VERIFIED_TOKENS_MAX: usize = 4096;

impl VerifiedTokens {
    /// The entries, emptied first when a revocation was heard of since they were stored.
    fn map(&self, epoch: u64) -> MutexGuard<'_, Verified> {
        let mut m = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if m.epoch != epoch {
            m.entries.clear();
            m.epoch = epoch;
        }
        m
    }

    /// The token as verified before, while it is unexpired at `now` and its key still published.
    fn get(
        &self,
        token: &str,
        keys: &KeySet,
        now: i64,
        epoch: u64,
    ) -> Option<Result<AccessToken, InvalidToken>> {
        let key = crypto::sha256(token.as_bytes());
        let mut map = self.map(epoch);
        let (kid, at) = map.entries.get(&key)?;
        if at.exp <= now {
            map.entries.remove(&key);
            return Some(Err(EXPIRED));
        }
        keys.publishes(kid).then(|| Ok(at.clone()))
    }

    fn put(&self, token: &str, kid: &str, at: &AccessToken, now: i64, epoch: u64) {
        let mut map = self.map(epoch);
        if map.entries.len() >= VERIFIED_TOKENS_MAX {
            map.entries.retain(|_, (_, at)| at.exp > now);
            if map.entries.len() >= VERIFIED_TOKENS_MAX {
                map.entries.clear();
            }
        }
        map.entries
            .insert(crypto::sha256(token.as_bytes()), (kid.to_owned(), at.clone()));
    }

    /// How many verified tokens are kept.
    pub fn len(&self) -> usize {
        match self.map.lock() {
            Ok(m) => m.entries.len(),
            Err(poisoned) => poisoned.into_inner().entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What checking an access token needs: the published keys, our issuer, this node's cache.
pub struct Verifier<'a> {
    pub keys: Arc<KeySet>,
    pub iss: &'a str,
    pub cache: &'a VerifiedTokens,
    /// This node's revocation epoch ([`Db::revocation_epoch`]): it moves whenever the node hears of a
    /// revocation, and the verified tokens are then dropped.
    pub revocations: u64,
}

const EXPIRED: InvalidToken = InvalidToken {
    description: "token expired",
};

/// Verifies signature, type, issuer and the times (`exp`, and `nbf` when present) against `now`;
/// revocation is checked by the caller when it matters.
pub fn parse_access_token(v: &Verifier<'_>, token: &str, now: i64) -> Result<AccessToken, InvalidToken> {
    let bad = |description: &'static str| InvalidToken { description };
    if let Some(cached) = v.cache.get(token, &v.keys, now, v.revocations) {
        return cached;
    }
    let (header, claims) = v.keys.verify(token).map_err(|_| bad("token is not valid"))?;
    if header.get("typ").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYP) {
        return Err(bad("not an access token"));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(v.iss) {
        return Err(bad("wrong issuer"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no expiry"))?;
    if exp <= now {
        return Err(EXPIRED);
    }
    // RFC 7519 §4.1.5: not to be accepted before `nbf` (yunid sets none; a token with one is honoured).
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now)
    {
        return Err(bad("token not yet valid"));
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
        v.cache.put(token, kid, &at, now, v.revocations);
    }
    Ok(at)
}

/// When a refresh token issued now expires: after the idle limit, never after its family.
pub fn refresh_expiry(refresh_idle_ttl: i64, family: &Family, now: i64) -> i64 {
    (now + refresh_idle_ttl).min(family.expires_at)
}

/// A new refresh token for a family; the database keeps its hash.
pub async fn refresh_token(
    db: &Db,
    rng: &dyn Random,
    refresh_idle_ttl: i64,
    family: &Family,
    now: i64,
) -> Result<String, TokenError> {
    let token = rng.token();
    let expires_at = refresh_expiry(refresh_idle_ttl, family, now);
    db.insert_refresh(&crypto::token_hash(&token), &family.id, now, expires_at)
        .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn signed(keys: &KeySet, claims: &Value) -> String {
        keys.sign(Alg::ES256, ACCESS_TOKEN_TYP, claims).unwrap()
    }

    fn claims(exp: i64) -> Value {
        json!({ "iss": "https://id.example", "sub": "s", "client_id": "c", "jti": "j", "iat": NOW, "exp": exp })
    }

    #[test]
    fn verified_tokens_expire_when_the_given_clock_passes_them() {
        let keys = Arc::new(KeySet::generate(NOW).unwrap());
        let cache = VerifiedTokens::default();
        let v = Verifier {
            keys: keys.clone(),
            iss: "https://id.example",
            cache: &cache,
            revocations: 0,
        };
        let token = signed(&keys, &claims(NOW + 600));
        assert_eq!(parse_access_token(&v, &token, NOW).unwrap().exp, NOW + 600);
        assert_eq!(cache.len(), 1);
        // Served from the cache while unexpired.
        assert!(parse_access_token(&v, &token, NOW + 599).is_ok());
        // The clock moves past `exp`: refused, and the entry is dropped.
        assert_eq!(parse_access_token(&v, &token, NOW + 600).unwrap_err(), EXPIRED);
        assert!(cache.is_empty());
        assert_eq!(parse_access_token(&v, &token, NOW + 600).unwrap_err(), EXPIRED);
    }

    #[test]
    fn access_tokens_are_checked_for_issuer_type_and_not_before() {
        let keys = Arc::new(KeySet::generate(NOW).unwrap());
        let cache = VerifiedTokens::default();
        let v = Verifier {
            keys: keys.clone(),
            iss: "https://id.example",
            cache: &cache,
            revocations: 0,
        };
        let mut other_iss = claims(NOW + 600);
        other_iss["iss"] = json!("https://other.example");
        let err = parse_access_token(&v, &signed(&keys, &other_iss), NOW).unwrap_err();
        assert_eq!(err.description, "wrong issuer");
        let id_token = keys.sign(Alg::ES256, "JWT", &claims(NOW + 600)).unwrap();
        let err = parse_access_token(&v, &id_token, NOW).unwrap_err();
        assert_eq!(err.description, "not an access token");
        let mut later = claims(NOW + 600);
        later["nbf"] = json!(NOW + 60);
        let later = signed(&keys, &later);
        assert_eq!(
            parse_access_token(&v, &later, NOW).unwrap_err().description,
            "token not yet valid"
        );
        assert!(parse_access_token(&v, &later, NOW + 60).is_ok());
    }

    #[test]
    fn the_cache_drops_expired_entries_first_when_full() {
        let keys = Arc::new(KeySet::generate(NOW).unwrap());
        let cache = VerifiedTokens::default();
        let at = |exp: i64| AccessToken {
            claims: Value::Null,
            jti: "j".into(),
            client_id: "c".into(),
            sub: "s".into(),
            family_id: None,
            exp,
        };
        let kid = keys.active_kid(Alg::ES256).unwrap().to_owned();
        for n in 0..VERIFIED_TOKENS_MAX {
            let exp = if n % 2 == 0 { NOW - 1 } else { NOW + 600 };
            cache.put(&format!("t{n}"), &kid, &at(exp), NOW - 10, 0);
        }
        cache.put("fresh", &kid, &at(NOW + 600), NOW, 0);
        assert_eq!(cache.len(), VERIFIED_TOKENS_MAX / 2 + 1);
        assert!(cache.get("t1", &keys, NOW, 0).is_some_and(|r| r.is_ok()));
    }

    #[test]
    fn verified_tokens_are_kept_by_hash_and_dropped_when_a_revocation_is_heard() {
        let keys = Arc::new(KeySet::generate(NOW).unwrap());
        let cache = VerifiedTokens::default();
        let token = signed(&keys, &claims(NOW + 600));
        let mut v = Verifier {
            keys: keys.clone(),
            iss: "https://id.example",
            cache: &cache,
            revocations: 7,
        };
        parse_access_token(&v, &token, NOW).unwrap();
        assert_eq!(cache.len(), 1);
        // The node's memory holds the token's hash, never the token.
        let kept = cache.map.lock().unwrap();
        assert!(kept.entries.contains_key(&crypto::sha256(token.as_bytes())));
        assert!(!kept.entries.keys().any(|k| k.as_slice() == token.as_bytes()));
        drop(kept);
        // Another revocation epoch: everything verified before is forgotten, and verified again.
        v.revocations = 8;
        assert!(cache.get(&token, &keys, NOW, 8).is_none());
        assert!(cache.is_empty());
        parse_access_token(&v, &token, NOW).unwrap();
        assert_eq!(cache.len(), 1);
    }
}
