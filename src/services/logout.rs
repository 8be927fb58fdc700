//! Ending SSO sessions: revoke what the session granted and tell every client that had it
//! (OpenID Connect Back-Channel Logout 1.0), through a retried outbox that any node may drain.
//!
//! Deliveries go out concurrently, each in its own task, at most [`PER_NODE`] at a time on a node and at
//! most [`PER_APP`] in flight for one app across the cluster: an app whose endpoint hangs delays only its
//! own logouts. A delivery is claimed for [`LEASE`] seconds, far longer than one attempt can take (the
//! client HTTP timeout is 5 s), so no other node sends it again while it is under way. The logout token
//! is signed when it is sent, so a late retry carries a fresh `iat`, `exp` and `jti`.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;
use crate::crypto::{Random, Secrets};
use crate::keys::KeySet;
use crate::services::oidc::claims;
use crate::services::outbound::{ClientHttp, error_text};
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::logout::{Claimed, Delivery};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Seconds a claimed delivery is left to the node that claimed it.
pub const LEASE: i64 = 60;
/// Deliveries in flight on one node.
pub const PER_NODE: usize = 32;
/// Deliveries in flight for one app.
pub const PER_APP: i64 = 4;
/// Lifetime of a logout token from the moment it is sent (Back-Channel Logout §2.4 suggests two minutes).
const TOKEN_TTL: i64 = 120;

/// Ending sessions and queueing their logout tokens; app.rs builds it.
pub struct Logout<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub rng: &'a dyn Random,
}

impl Logout<'_> {
    /// Ends a session everywhere. Returns false when it was already over.
    pub async fn end_session(&self, sid: &str, now: i64) -> anyhow::Result<bool> {
        let Some(session) = self.db.session_by_sid(sid).await? else {
            return Ok(false);
        };
        if !self.db.end_session(sid, now).await? {
            return Ok(false);
        }
        self.db.revoke_session_families(sid, now).await?;
        // A device code the session approved and no device redeemed yet ends too (`expired_token`).
        self.db.expire_session_device_grants(sid, now).await?;
        for (client_id, person_id) in self.db.session_clients(sid).await? {
            if let Some(client) = self.db.client(&client_id).await? {
                self.queue_for_app(&session.sid, &client, &person_id, now).await?;
            }
        }
        Ok(true)
    }

    /// Queues a logout token to `client` (when it takes back-channel logout) for session `sid`: one per
    /// subject the session's grants gave the app — the organisation's when the person acted for one
    /// (Back-Channel Logout §2.4), else the person's — each with the app's own `sid` for the session.
    pub async fn queue_for_app(
        &self,
        sid: &str,
        client: &Client,
        person_id: &str,
        now: i64,
    ) -> anyhow::Result<()> {
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            return Ok(());
        };
        let mut local_ids = self.db.session_grant_subjects(sid, &client.id).await?;
        if local_ids.is_empty() {
            local_ids.push(person_id.to_owned());
        }
        for local_id in local_ids {
            let delivery = Delivery {
                id: crate::ids::new_id(now, self.rng).to_string(),
                client_id: client.id.clone(),
                uri: uri.clone(),
                subject: claims::subject(self.secrets, client, &local_id),
                sid: self.secrets.client_sid(sid, &client.id),
                attempts: 0,
            };
            self.db.enqueue_logout(&delivery, now).await?;
        }
        Ok(())
    }

    /// Cuts a person off everywhere: every session ended (back-channel logout to each app), every grant
    /// revoked — `offline_access` ones too — and every SMS code not used yet dropped. For "sign out
    /// everywhere", an admin lock or disable, a counter password reset and a phone change: whoever held a
    /// refresh token, or a code sent to the old phone, keeps nothing.
    pub async fn end_everything(&self, person_id: &str, now: i64) -> anyhow::Result<()> {
        for s in self.db.sessions_of(person_id, now).await? {
            self.end_session(&s.sid, now).await?;
        }
        self.db.revoke_person_families(person_id, now).await?;
        // Device codes approved by any of the person's sessions, timed-out ones included (those are not
        // among the live sessions ended above).
        self.db.expire_person_device_grants(person_id, now).await?;
        // Scan codes the person's phone claimed or approved but no browser finished yet.
        self.db.deny_person_scans(person_id).await?;
        self.db.drop_sms_codes_of(person_id).await?;
        Ok(())
    }
}

/// The slots a node sends logout tokens through (one per delivery in flight).
pub fn slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(PER_NODE))
}

/// Claims what is due at `now` (as many as there are free `slots`), each with the slot it is sent
/// through; the caller sends each in its own task ([`Sender::deliver`]) and drops the slot after.
pub async fn claim_due(db: &Db, slots: &Arc<Semaphore>, now: i64) -> Vec<(Claimed, OwnedSemaphorePermit)> {
    let free = slots.available_permits();
    if free == 0 {
        return Vec::new();
    }
    let due = match db.claim_logout_deliveries(now, LEASE, free as i64, PER_APP).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the logout outbox");
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(due.len());
    for claimed in due {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Only this loop takes slots, so this does not happen; the lease expires and it is retried.
            break;
        };
        out.push((claimed, permit));
    }
    out
}

/// What sends a logout token: the store, the signing keys, the guarded client HTTP, and the clock (an
/// attempt takes seconds: its token and its outcome are dated when they happen).
pub struct Sender<'a> {
    pub db: &'a Db,
    pub keys: &'a KeySet,
    pub client_http: &'a ClientHttp,
    pub clock: &'a Clock,
    pub rng: &'a dyn Random,
    pub iss: &'a str,
    /// Attempts before a delivery is given up (`backchannel_max_attempts`).
    pub max_attempts: i64,
}

impl Sender<'_> {
    /// One attempt at one delivery, and its outcome recorded. Failures are retried with exponential
    /// back-off up to the configured attempts.
    pub async fn deliver(&self, claimed: Claimed) {
        let d = &claimed.delivery;
        let result = self.attempt(&claimed).await;
        let now = self.clock.now();
        let outcome = match result {
            Ok(()) => self.db.logout_delivered(&d.id, now).await,
            Err(Failure { error, retry }) => {
                let attempts = d.attempts + 1;
                let next = (retry && attempts < self.max_attempts).then(|| now + (1i64 << attempts.min(10)));
                tracing::info!(client = %d.client_id, attempts, %error, "back-channel logout delivery failed");
                self.db.logout_failed(&d.id, now, next, &error).await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "cannot record logout delivery");
        }
    }
}

struct Failure {
    error: String,
    /// False when trying again cannot help (the app is gone or no longer takes back-channel logouts).
    retry: bool,
}

impl Failure {
    fn retry(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retry: true,
        }
    }

    fn give_up(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retry: false,
        }
    }
}

impl Sender<'_> {
    async fn attempt(&self, claimed: &Claimed) -> Result<(), Failure> {
        let d = &claimed.delivery;
        let client = match self.db.client(&d.client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Failure::give_up("the app no longer exists")),
            Err(e) => return Err(Failure::retry(format!("cannot read the app: {e}"))),
        };
        // Sent where the app takes logouts now (an administrator may have corrected it meanwhile).
        let Some(uri) = client.backchannel_logout_uri.as_deref() else {
            return Err(Failure::give_up(
                "the app no longer has a back-channel logout URI",
            ));
        };
        let token = match &claimed.legacy_token {
            Some(token) => token.clone(),
            None => {
                let now = self.clock.now();
                // Logout token, §2.4: no nonce, a `typ` of logout+jwt, the event, `sid` and `sub`; made
                // now, so its `exp` counts from this attempt.
                let claims = json!({
                    "iss": self.iss,
                    "aud": client.id,
                    "iat": now,
                    "exp": now + TOKEN_TTL,
                    "jti": jti(self.rng),
                    "sub": d.subject,
                    "sid": d.sid,
                    "events": { EVENT: {} },
                });
                self.keys
                    .sign(client.id_token_alg, "logout+jwt", &claims)
                    .map_err(|e| Failure::retry(format!("cannot sign the logout token: {e}")))?
            }
        };
        let request = self
            .client_http
            .post(uri)
            .map_err(|e| Failure::retry(format!("refused: {e}")))?;
        match request.form(&[("logout_token", token.as_str())]).send().await {
            Ok(res) if res.status().is_success() => Ok(()),
            Ok(res) => Err(Failure::retry(format!("HTTP {}", res.status()))),
            Err(e) => Err(Failure::retry(error_text(e))),
        }
    }
}

/// A fresh token id: 128 random bits, hex, like a simple UUIDv4.
fn jti(rng: &dyn Random) -> String {
    let mut random = [0u8; 16];
    rng.fill(&mut random);
    uuid::Builder::from_random_bytes(random)
        .into_uuid()
        .simple()
        .to_string()
}
