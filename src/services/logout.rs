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
use tokio::sync::Semaphore;

use crate::app::App;
use crate::services::oidc::claims;
use crate::services::outbound::error_text;
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

/// Ends a session everywhere. Returns false when it was already over.
pub async fn end_session(app: &App, sid: &str, now: i64) -> anyhow::Result<bool> {
    let Some(session) = app.db.session_by_sid(sid).await? else {
        return Ok(false);
    };
    if !app.db.end_session(sid, now).await? {
        return Ok(false);
    }
    app.db.revoke_session_families(sid, now).await?;
    for (client_id, person_id) in app.db.session_clients(sid).await? {
        if let Some(client) = app.db.client(&client_id).await? {
            queue_for_app(app, &session.sid, &client, &person_id, now).await?;
        }
    }
    Ok(true)
}

/// Queues a logout token to `client` (when it takes back-channel logout) for session `sid`: one per
/// subject the session's grants gave the app — the organisation's when the person acted for one
/// (Back-Channel Logout §2.4), else the person's — each with the app's own `sid` for the session.
pub async fn queue_for_app(
    app: &App,
    sid: &str,
    client: &Client,
    person_id: &str,
    now: i64,
) -> anyhow::Result<()> {
    let Some(uri) = client.backchannel_logout_uri.clone() else {
        return Ok(());
    };
    let mut local_ids = app.db.session_grant_subjects(sid, &client.id).await?;
    if local_ids.is_empty() {
        local_ids.push(person_id.to_owned());
    }
    for local_id in local_ids {
        let delivery = Delivery {
            id: uuid::Uuid::now_v7().to_string(),
            client_id: client.id.clone(),
            uri: uri.clone(),
            subject: claims::subject(&app.secrets, client, &local_id),
            sid: app.secrets.client_sid(sid, &client.id),
            attempts: 0,
        };
        app.db.enqueue_logout(&delivery, now).await?;
    }
    Ok(())
}

/// Cuts a person off everywhere: every session ended (back-channel logout to each app), every grant
/// revoked — `offline_access` ones too — and every SMS code not used yet dropped. For "sign out
/// everywhere", an admin lock or disable, a counter password reset and a phone change: whoever held a
/// refresh token, or a code sent to the old phone, keeps nothing.
pub async fn end_everything(app: &App, person_id: &str, now: i64) -> anyhow::Result<()> {
    for s in app.db.sessions_of(person_id, now).await? {
        end_session(app, &s.sid, now).await?;
    }
    app.db.revoke_person_families(person_id, now).await?;
    app.db.drop_sms_codes_of(person_id).await?;
    Ok(())
}

/// The slots a node sends logout tokens through (one per delivery in flight).
pub fn slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(PER_NODE))
}

/// Claims what is due (as many as there are free `slots`) and sends each in its own task; returns
/// without waiting for them. Failures are retried with exponential back-off up to the configured
/// attempts.
pub async fn deliver_due(app: &App, slots: &Arc<Semaphore>) {
    let free = slots.available_permits();
    if free == 0 {
        return;
    }
    let now = app.now();
    let due = match app
        .db
        .claim_logout_deliveries(now, LEASE, free as i64, PER_APP)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the logout outbox");
            return;
        }
    };
    for claimed in due {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Only this loop takes slots, so this does not happen; the lease expires and it is retried.
            break;
        };
        let app = app.clone();
        tokio::spawn(async move {
            deliver(&app, claimed).await;
            drop(permit);
        });
    }
}

/// One attempt at one delivery, and its outcome recorded.
async fn deliver(app: &App, claimed: Claimed) {
    let d = &claimed.delivery;
    let result = attempt(app, &claimed).await;
    let now = app.now();
    let outcome = match result {
        Ok(()) => app.db.logout_delivered(&d.id, now).await,
        Err(Failure { error, retry }) => {
            let attempts = d.attempts + 1;
            let next = (retry && attempts < app.config.backchannel_max_attempts)
                .then(|| now + (1i64 << attempts.min(10)));
            tracing::info!(client = %d.client_id, attempts, %error, "back-channel logout delivery failed");
            app.db.logout_failed(&d.id, now, next, &error).await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "cannot record logout delivery");
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

async fn attempt(app: &App, claimed: &Claimed) -> Result<(), Failure> {
    let d = &claimed.delivery;
    let client = match app.db.client(&d.client_id).await {
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
            let now = app.now();
            // Logout token, §2.4: no nonce, a `typ` of logout+jwt, the event, `sid` and `sub`; made
            // now, so its `exp` counts from this attempt.
            let claims = json!({
                "iss": app.config.iss(),
                "aud": client.id,
                "iat": now,
                "exp": now + TOKEN_TTL,
                "jti": uuid::Uuid::new_v4().simple().to_string(),
                "sub": d.subject,
                "sid": d.sid,
                "events": { EVENT: {} },
            });
            app.keys()
                .sign(client.id_token_alg, "logout+jwt", &claims)
                .map_err(|e| Failure::retry(format!("cannot sign the logout token: {e}")))?
        }
    };
    let request = app
        .client_http
        .post(uri)
        .map_err(|e| Failure::retry(format!("refused: {e}")))?;
    match request.form(&[("logout_token", token.as_str())]).send().await {
        Ok(res) if res.status().is_success() => Ok(()),
        Ok(res) => Err(Failure::retry(format!("HTTP {}", res.status()))),
        Err(e) => Err(Failure::retry(error_text(e))),
    }
}
