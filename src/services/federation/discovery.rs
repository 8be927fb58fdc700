//! An upstream's metadata (OpenID Connect Discovery 1.0), fetched through the guarded client and kept
//! per node for [`TTL`] seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::FederationError;
use crate::config::upstream::check_url;
use crate::services::outbound::{ClientHttp, error_text};

/// How long fetched metadata is used without fetching again, seconds.
pub const TTL: i64 = 300;
/// Largest metadata document accepted.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// RFC 9207: the upstream names itself in its authorization responses (`iss`), which must then be
    /// present and right.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// What was fetched for one upstream: from which URL, when, and the metadata.
type Entry = (String, i64, Arc<Metadata>);

/// Per-node cache of upstream metadata, by upstream id.
#[derive(Default)]
pub struct Discovered {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Discovered {
    /// The metadata at `discovery_url` for upstream `id`, fetched when not cached or older than [`TTL`].
    pub async fn get(
        &self,
        http: &ClientHttp,
        id: &str,
        discovery_url: &str,
        allow_http: bool,
        now: i64,
    ) -> Result<Arc<Metadata>, FederationError> {
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((url, at, m)) = entries.get(id)
                && url == discovery_url
                && now - at < TTL
                && now >= *at
            {
                return Ok(m.clone());
            }
        }
        let metadata = Arc::new(fetch(http, discovery_url, allow_http).await?);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(id.to_owned(), (discovery_url.to_owned(), now, metadata.clone()));
        Ok(metadata)
    }

    /// Forgets what is cached for `id` (after its settings change).
    pub fn forget(&self, id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(id);
    }
}

async fn fetch(
    http: &ClientHttp,
    discovery_url: &str,
    allow_http: bool,
) -> Result<Metadata, FederationError> {
    let unavailable = |why: String| FederationError::Unavailable(format!("discovery: {why}"));
    // Stored before https was required, or the development switch turned off since.
    check_url("discovery_url", discovery_url, allow_http).map_err(|(_, why)| unavailable(why))?;
    let res = http
        .get(discovery_url)
        .map_err(|e| unavailable(e.to_string()))?
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| unavailable(error_text(e)))?;
    if !res.status().is_success() {
        return Err(unavailable(format!("status {}", res.status().as_u16())));
    }
    let body = limited_body(res, MAX_BODY).await.map_err(unavailable)?;
    let metadata: Metadata =
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("not metadata: {e}")))?;
    check_metadata(&metadata, discovery_url, allow_http).map_err(unavailable)?;
    for endpoint in [
        &metadata.authorization_endpoint,
        &metadata.token_endpoint,
        &metadata.jwks_uri,
    ] {
        http.guard()
            .check_url(endpoint)
            .map_err(|e| unavailable(format!("endpoint: {e}")))?;
    }
    Ok(metadata)
}

/// What fetched metadata must say: the issuer is the URL it was fetched under (Discovery §4.3), and
/// every endpoint yunid sends a person or a request to is https (http only with `allow_http`).
pub fn check_metadata(metadata: &Metadata, discovery_url: &str, allow_http: bool) -> Result<(), String> {
    let expected = format!(
        "{}/.well-known/openid-configuration",
        metadata.issuer.trim_end_matches('/')
    );
    if expected != discovery_url {
        return Err("the issuer does not match the discovery URL".into());
    }
    for (field, endpoint) in [
        ("issuer", &metadata.issuer),
        ("authorization_endpoint", &metadata.authorization_endpoint),
        ("token_endpoint", &metadata.token_endpoint),
        ("jwks_uri", &metadata.jwks_uri),
    ] {
        check_url(field, endpoint, allow_http).map_err(|(f, why)| format!("{f} {why}"))?;
    }
    Ok(())
}

/// A response body of at most `max` bytes.
pub async fn limited_body(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(error_text)? {
        if body.len() + chunk.len() > max {
            return Err("answer too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(base: &str, endpoints: &str) -> Metadata {
        Metadata {
            issuer: base.into(),
            authorization_endpoint: format!("{endpoints}/authorize"),
            token_endpoint: format!("{endpoints}/token"),
            jwks_uri: format!("{endpoints}/jwks"),
            authorization_response_iss_parameter_supported: false,
        }
    }

    #[test]
    fn endpoints_must_be_https_unless_http_is_allowed_for_development() {
        let url = "https://id.example/.well-known/openid-configuration";
        assert_eq!(
            check_metadata(&metadata("https://id.example", "https://id.example"), url, false),
            Ok(())
        );
        let downgraded = metadata("https://id.example", "http://id.example");
        let refused = check_metadata(&downgraded, url, false).unwrap_err();
        assert!(
            refused.contains("authorization_endpoint") && refused.contains("https"),
            "{refused}"
        );
        assert_eq!(check_metadata(&downgraded, url, true), Ok(()));
        let mut jwks = metadata("https://id.example", "https://id.example");
        jwks.jwks_uri = "http://keys.example/jwks".into();
        assert!(
            check_metadata(&jwks, url, false)
                .unwrap_err()
                .contains("jwks_uri")
        );
        let plain = "http://id.example/.well-known/openid-configuration";
        assert!(check_metadata(&metadata("http://id.example", "https://id.example"), plain, false).is_err());
        assert!(
            check_metadata(
                &metadata("https://other.example", "https://id.example"),
                url,
                false
            )
            .is_err()
        );
    }
}
