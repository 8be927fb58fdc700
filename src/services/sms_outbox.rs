//! The SMS outbox: messages are queued sealed with the data-protection secret (bound to their row) and
//! sent by a background worker, each claimed with a lease; a message is deleted once delivered. The node
//! that queues a message claims it in the same insert and its worker sends it at once; any node's sweep
//! sends what is due (a failed send tried again, a message whose node died, after its lease). No answer
//! waits for the SMS provider.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::crypto::{Random, Secrets};
use crate::metrics::Metrics;
use crate::services::sms_gateway::{SmsGateway, SmsMessage};
use crate::store::Db;
use crate::store::sms_outbox::Outgoing;

/// How long a node holds a claimed message (longer than the webhook's three tries take).
const LEASE: i64 = 60;
/// Deliveries tried per message (each of them the gateway's own three tries), while the code lives.
const MAX_ATTEMPTS: i64 = 3;

/// Messages this node queued claimed, handed to its own outbox worker to send at once (no claim
/// statement), and what wakes that worker. Until the worker runs (`App::spawn_background`: a command-line
/// tool has none), messages are queued unclaimed, for any node's sweep.
#[derive(Default)]
pub struct Handoff {
    running: AtomicBool,
    queue: Mutex<Vec<Outgoing>>,
    wake: tokio::sync::Notify,
}

impl Handoff {
    /// This node's worker takes the messages handed to it from now on.
    pub fn start(&self) {
        self.running.store(true, Ordering::SeqCst);
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn push(&self, message: Outgoing) {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(message);
        self.wake.notify_one();
    }

    /// The messages handed over since the last call.
    pub fn take(&self) -> Vec<Outgoing> {
        std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Waits until a message is handed over (at once when one was since the last wait).
    pub async fn handed(&self) {
        self.wake.notified().await;
    }
}

/// What queues messages: the store, the data-protection secret, this node's worker to hand them to, and
/// the randomness of the messages' ids.
pub struct Outbox<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub metrics: &'a Metrics,
    pub handoff: &'a Handoff,
    /// The randomness of the messages' ids.
    pub rng: &'a dyn Random,
}

/// A message sealed for its outbox row, not yet written: the row's id, the sealed text, and the claim of
/// this node's worker (`None` while no worker runs here).
pub struct Queued {
    pub id: String,
    pub sealed: String,
    pub claimed_until: Option<i64>,
    expires_at: i64,
}

impl Outbox<'_> {
    /// Puts a message in the outbox, sealed with the data-protection secret (bound to its row); `None`
    /// writes a row with nothing to send, so that path costs the same. The row is claimed for this
    /// node's worker (one lease) and handed to it to send at once.
    pub async fn enqueue(
        &self,
        message: Option<&SmsMessage>,
        now: i64,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        let id = crate::ids::new_id(now, self.rng).to_string();
        let sealed = match message {
            Some(m) => Some(self.seal(m, &id)?),
            None => None,
        };
        let queued = Queued {
            id,
            sealed: sealed.clone().unwrap_or_default(),
            claimed_until: self.handoff.running().then_some(now + LEASE),
            expires_at,
        };
        match queued.claimed_until {
            None => {
                self.db
                    .enqueue_sms(&queued.id, sealed.as_deref(), now, expires_at)
                    .await?
            }
            Some(until) => {
                self.db
                    .enqueue_sms_claimed(&queued.id, sealed.as_deref(), now, until, expires_at)
                    .await?
            }
        }
        self.hand_over(queued, sealed.is_some());
        Ok(())
    }

    /// Seals `message` for a row another statement writes (`Db::send_sms_code`), claimed for this node's
    /// worker when it runs; [`Outbox::hand_over`] once the row is written.
    pub fn prepare(&self, message: &SmsMessage, now: i64, expires_at: i64) -> anyhow::Result<Queued> {
        let id = crate::ids::new_id(now, self.rng).to_string();
        Ok(Queued {
            sealed: self.seal(message, &id)?,
            id,
            claimed_until: self.handoff.running().then_some(now + LEASE),
            expires_at,
        })
    }

    /// Hands a written row this node claimed to its worker, to send at once; `to_send` false for a row
    /// written with nothing to send. A row not claimed is left for any node's sweep.
    pub fn hand_over(&self, queued: Queued, to_send: bool) {
        if queued.claimed_until.is_none() {
            return;
        }
        self.handoff.push(Outgoing {
            id: queued.id,
            sealed: to_send.then_some(queued.sealed),
            attempts: 1,
            expires_at: queued.expires_at,
        });
    }

    fn seal(&self, message: &SmsMessage, id: &str) -> anyhow::Result<String> {
        self.secrets
            .encrypt(&serde_json::to_string(message)?, id.as_bytes())
    }
}

/// What sends the queued messages: the store, the secret that opens them, and the gateway.
pub struct Delivery<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub metrics: &'a Metrics,
    pub gateway: &'a dyn SmsGateway,
}

impl Delivery<'_> {
    /// Sends what is due in the outbox at `now`; any node may run it (each message is claimed with a
    /// lease). A message is deleted once delivered; a failed one is tried again with back-off while it
    /// is still worth sending, then given up (and deleted).
    pub async fn deliver_due(&self, now: i64) {
        let due = match self.db.claim_sms(now, LEASE).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the SMS outbox");
                return;
            }
        };
        self.deliver_claimed(&due, now).await;
    }

    /// Sends messages this node holds the claim of (claimed by the sweep, or queued claimed and handed
    /// over), side by side: the whole batch then takes one message's time (a hanging provider ~16 s),
    /// well inside the lease even for a message handed over while the batch before it was being sent,
    /// so no message outlives its claim and is sent twice by another node. The batch's finished
    /// messages are deleted together, in one statement, once the batch is through.
    pub async fn deliver_claimed(&self, claimed: &[Outgoing], now: i64) {
        let sending = claimed.iter().map(|m| async move {
            match self.deliver(m, now).await {
                Ok(Finished::Yes) => Some(m.id.as_str()),
                Ok(Finished::Retry) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot update the SMS outbox");
                    None
                }
            }
        });
        let finished: Vec<&str> = futures_util::future::join_all(sending)
            .await
            .into_iter()
            .flatten()
            .collect();
        if finished.is_empty() {
            return;
        }
        if let Err(e) = self.db.sms_done(&finished).await {
            tracing::warn!(error = %e, "cannot update the SMS outbox");
        }
    }

    /// Sends one message; says whether it is finished with (delivered, given up, nothing to send: to be
    /// deleted) or was put back for another try.
    async fn deliver(&self, m: &Outgoing, now: i64) -> anyhow::Result<Finished> {
        let Some(sealed) = &m.sealed else {
            return Ok(Finished::Yes);
        };
        let message: SmsMessage = match self
            .secrets
            .decrypt(sealed, m.id.as_bytes())
            .and_then(|json| Ok(serde_json::from_str(&json)?))
        {
            Ok(message) => message,
            Err(e) => {
                self.metrics.sms("failed");
                tracing::error!(error = %e, "an SMS in the outbox cannot be opened; dropped");
                return Ok(Finished::Yes);
            }
        };
        match self.gateway.send(&message, now).await {
            Ok(()) => {
                self.metrics.sms("sent");
                Ok(Finished::Yes)
            }
            Err(e) => {
                let next = now + (2i64 << m.attempts.min(6));
                if m.attempts < MAX_ATTEMPTS && next < m.expires_at {
                    tracing::warn!(error = %e, attempts = m.attempts, "SMS not sent yet; will try again");
                    self.db.sms_retry(&m.id, next).await?;
                    Ok(Finished::Retry)
                } else {
                    // The person sees the same page either way; a failed send is for the operator.
                    self.metrics.sms("failed");
                    tracing::error!(error = %e, "SMS could not be sent");
                    Ok(Finished::Yes)
                }
            }
        }
    }
}

/// What became of a message after one attempt.
enum Finished {
    /// Delivered, given up, or nothing to send: deleted with its batch.
    Yes,
    /// Put back for another try later.
    Retry,
}
