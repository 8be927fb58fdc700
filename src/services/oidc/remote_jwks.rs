//! The keys of `private_key_jwt` clients that publish them at a `jwks_uri` (RFC 7591 §2): fetched with
//! `app.client_http` (5 s timeout, no redirects, public addresses only: `services::outbound`), size-limited, public keys only, and kept per node for
//! [`TTL`] seconds. An assertion naming a key the cached set lacks (the client rotated its key) makes
//! this node fetch again, but at most once per [`MIN_REFETCH`] seconds per client, so a flood of bad
//! assertions never makes yunid hammer the app's server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use crate::services::outbound::{ClientHttp, error_text};

/// How long fetched keys are used without fetching again.
pub const TTL: i64 = 300;
/// Fewest seconds between two fetches of one client's keys.
pub const MIN_REFETCH: i64 = 30;
/// Largest JWKS document accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Members of a JWK that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

#[derive(Default)]
struct Entry {
    /// The URI the keys came from (a changed `jwks_uri` starts afresh).
    uri: String,
    keys: Option<Arc<JwkSet>>,
    fetched_at: i64,
    /// When this node last tried to fetch (successfully or not); `None`: never.
    attempted_at: Option<i64>,
    /// Why the last attempt failed, if it did.
    last_error: Option<String>,
}

/// Per-node cache of clients' fetched key sets, by client id.
#[derive(Default)]
pub struct RemoteJwks {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

/// What to do for one assertion, given the cache entry.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Use the cached keys.
    Cached,
    /// Fetch now.
    Fetch,
    /// Fetched too recently to fetch again: use what is cached (possibly nothing).
    Wait,
}

fn plan(entry: &Entry, uri: &str, kid: Option<&str>, now: i64) -> Plan {
    let same_uri = entry.uri == uri;
    let fresh = same_uri && entry.keys.is_some() && now - entry.fetched_at < TTL;
    let has_kid = entry
        .keys
        .as_ref()
        .is_some_and(|k| kid.is_none_or(|kid| k.find(kid).is_some()));
    if fresh && has_kid {
        return Plan::Cached;
    }
    match entry.attempted_at {
        Some(at) if same_uri && now - at < MIN_REFETCH && now >= at => Plan::Wait,
        _ => Plan::Fetch,
    }
}

impl RemoteJwks {
    /// The keys client `client_id` publishes at `uri`, as this node knows them, fetching them when
    /// the cached set is missing, expired, or lacks `kid` (and the last fetch is old enough).
    /// `Err` says why there are no usable keys (for the `invalid_client` description).
    pub async fn keys(
        &self,
        http: &ClientHttp,
        client_id: &str,
        uri: &str,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<JwkSet>, String> {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.entry(client_id.to_owned()).or_default().clone()
        };
        // One fetch at a time per client; others wait for its result.
        let mut entry = slot.lock().await;
        match plan(&entry, uri, kid, now) {
            Plan::Cached => {}
            Plan::Wait => {}
            Plan::Fetch => {
                if entry.uri != uri {
                    *entry = Entry {
                        uri: uri.to_owned(),
                        ..Entry::default()
                    };
                }
                entry.attempted_at = Some(now);
                match fetch(http, uri).await {
                    Ok(keys) => {
                        entry.keys = Some(Arc::new(keys));
                        entry.fetched_at = now;
                        entry.last_error = None;
                    }
                    Err(e) => {
                        tracing::warn!(client_id, jwks_uri = uri, error = %e, "client JWKS fetch failed");
                        entry.last_error = Some(e);
                    }
                }
            }
        }
        match &entry.keys {
            Some(keys) if entry.uri == uri && now - entry.fetched_at < TTL => Ok(keys.clone()),
            // The reason stays in the log: telling the caller (connection refused, status, size) would
            // let a registrant probe what yunid can reach.
            _ => Err("the client's jwks_uri could not be fetched (see the provider's log)".to_owned()),
        }
    }
}

async fn fetch(http: &ClientHttp, uri: &str) -> Result<JwkSet, String> {
    let mut res = http
        .get(uri)
        .map_err(|e| format!("refused: {e}"))?
        .header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(|e| format!("request failed ({})", error_text(e)))?;
    if res.status() != reqwest::StatusCode::OK {
        return Err(format!("status {}", res.status().as_u16()));
    }
    if res.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("the JWKS is larger than {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| format!("reading failed ({})", error_text(e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the JWKS is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    public_jwks(&body)
}

/// A JWK Set of public keys only; a private member means the client published its private key, and
/// nothing in that set is trusted.
pub fn public_jwks(body: &[u8]) -> Result<JwkSet, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|_| "the JWKS is not JSON".to_owned())?;
    let leaks = raw.get("keys").and_then(Value::as_array).is_some_and(|keys| {
        keys.iter()
            .any(|k| PRIVATE_MEMBERS.iter().any(|m| k.get(m).is_some()))
    });
    if leaks {
        return Err("the JWKS holds private key material; it is refused".to_owned());
    }
    let set: JwkSet = serde_json::from_value(raw).map_err(|e| format!("not a JWK Set: {e}"))?;
    if set.keys.is_empty() {
        return Err("the JWKS has no keys".to_owned());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kid: &str) -> Arc<JwkSet> {
        let body = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}]}}"#
        );
        Arc::new(public_jwks(body.as_bytes()).unwrap())
    }

    fn fetched(kid: &str, at: i64) -> Entry {
        Entry {
            uri: "https://app/jwks".into(),
            keys: Some(set(kid)),
            fetched_at: at,
            attempted_at: Some(at),
            last_error: None,
        }
    }

    const URI: &str = "https://app/jwks";

    #[test]
    fn nothing_cached_is_fetched() {
        assert_eq!(plan(&Entry::default(), URI, Some("a"), 1000), Plan::Fetch);
    }

    #[test]
    fn a_known_kid_uses_the_cache_until_the_ttl() {
        let e = fetched("a", 1000);
        assert_eq!(plan(&e, URI, Some("a"), 1000 + TTL - 1), Plan::Cached);
        assert_eq!(plan(&e, URI, None, 1000 + 10), Plan::Cached);
        assert_eq!(plan(&e, URI, Some("a"), 1000 + TTL), Plan::Fetch);
    }

    #[test]
    fn an_unknown_kid_refetches_at_most_every_min_refetch_seconds() {
        let e = fetched("a", 1000);
        assert_eq!(plan(&e, URI, Some("b"), 1000 + MIN_REFETCH - 1), Plan::Wait);
        assert_eq!(plan(&e, URI, Some("b"), 1000 + MIN_REFETCH), Plan::Fetch);
    }

    #[test]
    fn a_failed_fetch_is_not_retried_at_once() {
        let e = Entry {
            uri: URI.into(),
            attempted_at: Some(1000),
            last_error: Some("down".into()),
            ..Entry::default()
        };
        assert_eq!(plan(&e, URI, Some("a"), 1005), Plan::Wait);
        assert_eq!(plan(&e, URI, Some("a"), 1000 + MIN_REFETCH), Plan::Fetch);
    }

    #[test]
    fn a_changed_uri_is_fetched_at_once() {
        let e = fetched("a", 1000);
        assert_eq!(plan(&e, "https://app/other", Some("a"), 1001), Plan::Fetch);
    }

    #[test]
    fn private_members_are_refused() {
        let body = br#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#;
        assert!(public_jwks(body).unwrap_err().contains("private"));
        assert!(public_jwks(br#"{"keys":[]}"#).is_err());
        assert!(public_jwks(b"<html>").is_err());
    }
}
