//! The SMS outbox: messages are queued sealed with the data-protection secret (bound to their row) and
//! sent by a background worker on any node, each claimed with a lease; a message is deleted once
//! delivered. No answer waits for the SMS provider.

use crate::app::App;
use crate::services::sms::SmsMessage;
use crate::store::sms_outbox::Outgoing;

/// How long a node holds a claimed message (longer than the webhook's three tries take).
const LEASE: i64 = 60;
/// Deliveries tried per message (each of them the gateway's own three tries), while the code lives.
const MAX_ATTEMPTS: i64 = 3;

/// Puts a message in the outbox, sealed with the data-protection secret (bound to its row); `None`
/// writes a row with nothing to send, so that path costs the same. Wakes this node's worker.
pub async fn enqueue(
    app: &App,
    message: Option<&SmsMessage>,
    now: i64,
    expires_at: i64,
) -> anyhow::Result<()> {
    let id = uuid::Uuid::now_v7().to_string();
    let sealed = match message {
        Some(m) => Some(app.secrets.encrypt(&serde_json::to_string(m)?, id.as_bytes())?),
        None => None,
    };
    app.db
        .enqueue_sms(&id, sealed.as_deref(), now, expires_at)
        .await?;
    app.sms_wake.notify_one();
    Ok(())
}

/// Sends what is due in the outbox; any node may run it (each message is claimed with a lease). A
/// message is deleted once delivered; a failed one is tried again with back-off while it is still
/// worth sending, then given up (and deleted).
pub async fn deliver_due(app: &App) {
    let due = match app.db.claim_sms(app.now(), LEASE).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the SMS outbox");
            return;
        }
    };
    // Sent side by side: the whole batch then takes one message's time (a hanging provider ~16 s), well
    // inside the lease, so no message outlives its claim and is sent twice by another node.
    let mut sending = tokio::task::JoinSet::new();
    for m in due {
        let app = app.clone();
        sending.spawn(async move {
            if let Err(e) = deliver(&app, &m).await {
                tracing::warn!(error = %e, "cannot update the SMS outbox");
            }
        });
    }
    while sending.join_next().await.is_some() {}
}

async fn deliver(app: &App, m: &Outgoing) -> anyhow::Result<()> {
    let Some(sealed) = &m.sealed else {
        app.db.sms_done(&m.id).await?;
        return Ok(());
    };
    let message: SmsMessage = match app
        .secrets
        .decrypt(sealed, m.id.as_bytes())
        .and_then(|json| Ok(serde_json::from_str(&json)?))
    {
        Ok(message) => message,
        Err(e) => {
            app.metrics.sms("failed");
            tracing::error!(error = %e, "an SMS in the outbox cannot be opened; dropped");
            app.db.sms_done(&m.id).await?;
            return Ok(());
        }
    };
    match app.sms.send(&message).await {
        Ok(()) => {
            app.metrics.sms("sent");
            app.db.sms_done(&m.id).await?;
        }
        Err(e) => {
            let next = app.now() + (2i64 << m.attempts.min(6));
            if m.attempts < MAX_ATTEMPTS && next < m.expires_at {
                tracing::warn!(error = %e, attempts = m.attempts, "SMS not sent yet; will try again");
                app.db.sms_retry(&m.id, next).await?;
            } else {
                // The person sees the same page either way; a failed send is for the operator.
                app.metrics.sms("failed");
                tracing::error!(error = %e, "SMS could not be sent");
                app.db.sms_done(&m.id).await?;
            }
        }
    }
    Ok(())
}
