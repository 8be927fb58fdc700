//! The pending authorization request, carried by the browser sealed (AES-256-GCM under the
//! deployment's data-protection secret, so any node opens it) instead of stored: no step of a flow
//! reads it from the database. It stays bound exactly as a stored one was: to the browser that started
//! it (the hash of that browser's binding secret is sealed in with it and compared in constant time),
//! to its expiry, and to the person who answered each of its pages (`consented_by`, `acting_by`). It is
//! answered once: the answer writes a marker under the request's id (`Db::answer_auth_request`).

use serde::{Deserialize, Serialize};

use crate::crypto::{self, Random, Secrets};
use crate::services::oidc::authorize::AuthRequest;

/// Binds the sealed value to its purpose: no other sealed value of yunid opens as a request.
const AAD: &[u8] = b"yunid/pending-request/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// A random id; its hash names the request's "answered" marker.
    pub id: String,
    /// The hash of the binding secret of the browser that started the request.
    pub browser: String,
    pub expires_at: i64,
    /// The session of a login made for this request in that browser.
    #[serde(default)]
    pub login_sid: Option<String>,
    pub req: AuthRequest,
}

/// What a `req` value is to the browser presenting it.
pub enum Lookup {
    /// Expired, tampered with, or never issued.
    Missing,
    /// Started in this browser.
    Bound(Box<Pending>),
    /// Started in another browser: to be started over here.
    Foreign(Box<AuthRequest>),
    /// Started in this browser and answered already (its marker exists): nothing more is done for it.
    Answered,
}

impl Pending {
    /// A new request bound to the browser holding `browser_secret`.
    pub fn new(rng: &dyn Random, req: AuthRequest, browser_secret: &str, now: i64, ttl: i64) -> Pending {
        Pending {
            id: rng.token(),
            browser: crypto::token_hash(browser_secret),
            expires_at: now + ttl,
            login_sid: None,
            req,
        }
    }

    /// The hash the answered marker is stored under.
    pub fn id_hash(&self) -> String {
        crypto::token_hash(&self.id)
    }

    /// The value the browser carries (`req`): base64url, safe in a URL and a form. Sealed under the
    /// day key for carried values (`Secrets::seal_carried`), never the at-rest key.
    pub fn seal(&self, secrets: &Secrets, now: i64) -> anyhow::Result<String> {
        let sealed = secrets.seal_carried(&serde_json::to_vec(self)?, AAD, now)?;
        Ok(crypto::b64url(&sealed))
    }

    fn open(secrets: &Secrets, sealed: &str, now: i64) -> Option<Pending> {
        // Review L1: nothing larger than a request can be is decoded or decrypted.
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let raw = crypto::b64url_decode(sealed)?;
        let json = secrets.open_carried(&raw, AAD, now)?;
        let pending: Pending = serde_json::from_slice(&json).ok()?;
        (pending.expires_at > now).then_some(pending)
    }
}

/// The longest `req` a browser may present: a request is at most `authorize::MAX_REQUEST_BYTES` of JSON
/// (refused at `/authorize` beyond that), plus what the steps add (consent, the acting choice, the login
/// session) and the sealing, base64url-encoded.
pub const MAX_SEALED: usize = (crate::services::oidc::authorize::MAX_REQUEST_BYTES + 1024) * 4 / 3 + 64;

/// Opens `sealed` and says whether it belongs to the browser holding `browser_secret` (constant-time
/// comparison of the binding hashes).
pub fn load(secrets: &Secrets, sealed: &str, browser_secret: Option<&str>, now: i64) -> Lookup {
    let Some(pending) = Pending::open(secrets, sealed, now) else {
        return Lookup::Missing;
    };
    let bound = browser_secret.is_some_and(|secret| {
        crypto::ct_eq(pending.browser.as_bytes(), crypto::token_hash(secret).as_bytes())
    });
    if bound {
        Lookup::Bound(Box::new(pending))
    } else {
        Lookup::Foreign(Box::new(pending.req))
    }
}

/// The `max_age` the app asked for in the sealed request `sealed`, if it opens (any browser's: it can
/// only make a check stricter).
pub fn max_age(secrets: &Secrets, sealed: &str, now: i64) -> Option<i64> {
    Pending::open(secrets, sealed, now).and_then(|p| p.req.max_age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::OsRandom;

    fn request() -> AuthRequest {
        serde_json::from_value(serde_json::json!({
            "client_id": "app",
            "target": { "redirect_uri": "https://app.example/cb", "mode": "query", "state": "s" },
            "scopes": ["openid"],
            "nonce": null,
            "code_challenge": "x".repeat(43),
            "prompt": [],
            "max_age": null,
            "login_hint": null,
            "id_token_hint": null,
            "acr_values": [],
            "claims": null,
            "ui_locales": null
        }))
        .unwrap()
    }

    #[test]
    fn a_sealed_request_opens_only_in_its_browser_and_only_before_expiry() {
        let secrets = Secrets::from_master(&[9u8; 32]).unwrap();
        let p = Pending::new(&OsRandom, request(), "browser-a", 100, 60);
        let sealed = p.seal(&secrets, 100).unwrap();
        assert!(
            sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(matches!(
            load(&secrets, &sealed, Some("browser-a"), 159),
            Lookup::Bound(_)
        ));
        assert!(matches!(
            load(&secrets, &sealed, Some("browser-b"), 159),
            Lookup::Foreign(_)
        ));
        assert!(matches!(load(&secrets, &sealed, None, 159), Lookup::Foreign(_)));
        assert!(matches!(
            load(&secrets, &sealed, Some("browser-a"), 160),
            Lookup::Missing
        ));
        let other = Secrets::from_master(&[8u8; 32]).unwrap();
        assert!(matches!(
            load(&other, &sealed, Some("browser-a"), 100),
            Lookup::Missing
        ));
        let mut tampered = sealed.into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(
            load(&secrets, &tampered, Some("browser-a"), 100),
            Lookup::Missing
        ));
    }
}
