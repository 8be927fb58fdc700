//! Ending SSO sessions: revoke what the session granted and tell every client that had it
//! (OpenID Connect Back-Channel Logout 1.0), through a retried outbox that any node may drain.

use serde_json::json;

use crate::app::App;
use crate::services::oidc::claims;
use crate::store::logout::Delivery;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

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
        let Some(client) = app.db.client(&client_id).await? else {
            continue;
        };
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            continue;
        };
        // Logout token, §2.4: no nonce, a `typ` of logout+jwt, the event, `sid` and `sub`.
        let claims = json!({
            "iss": app.config.iss(),
            "aud": client.id,
            "iat": now,
            "exp": now + 120,
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "sub": claims::subject(app, &client, &person_id),
            "sid": session.sid,
            "events": { EVENT: {} },
        });
        let token = app.keys().sign(client.id_token_alg, "logout+jwt", &claims)?;
        let delivery = Delivery {
            id: uuid::Uuid::now_v7().to_string(),
            client_id: client.id.clone(),
            uri,
            token,
            attempts: 0,
        };
        app.db.enqueue_logout(&delivery, now).await?;
    }
    Ok(true)
}

/// Sends what is due; failures are retried with exponential back-off up to the configured attempts.
pub async fn deliver_due(app: &App) {
    let now = app.now();
    let due = match app.db.claim_logout_deliveries(now, 30).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the logout outbox");
            return;
        }
    };
    for d in due {
        let result = match app.client_http.post(&d.uri) {
            Ok(request) => request
                .form(&[("logout_token", d.token.as_str())])
                .send()
                .await
                .map_err(crate::services::outbound::error_text),
            Err(refused) => Err(format!("refused: {refused}")),
        };
        let now = app.now();
        let outcome = match result {
            Ok(res) if res.status().is_success() => app.db.logout_delivered(&d.id, now).await,
            other => {
                let error = match other {
                    Ok(res) => format!("HTTP {}", res.status()),
                    Err(e) => e,
                };
                let attempts = d.attempts + 1;
                let next = (attempts < app.config.backchannel_max_attempts)
                    .then(|| now + (1i64 << attempts.min(10)));
                tracing::info!(client = %d.client_id, attempts, %error, "back-channel logout delivery failed");
                app.db.logout_failed(&d.id, now, next, &error).await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "cannot record logout delivery");
        }
    }
}
