//! Real-name proofing online and legal persons by themselves: a person raises their real-name level
//! against the authorities' databases (population, mobile carrier, face verification) and binds an
//! enterprise they legally represent through the legal-person registry.
//!
//! Every authority is a connector with an HTTP JSON contract (docs/CONNECTORS.md). What is kept of a
//! check is its connector, outcome, transaction id and time: never the raw answer, never an ID number
//! (not in the database beyond the person's own encrypted one, not in a log, an audit detail or an
//! error). An authority that is slow, down or answers nonsense is "try later", never a failed login.
//!
//! Like every new service, this one takes what it uses ([`Ctx`]) and `now`; it never reads the clock or
//! the application.

pub mod connectors;
pub mod evidence;
pub mod face;
pub mod levels;
pub mod orgs;

use std::future::Future;
use std::pin::Pin;

use crate::crypto::{Random, Secrets};
use crate::metrics::Metrics;
use crate::store::Db;
use crate::store::audit::NewEvent;

pub use connectors::{Connector, Connectors, Endpoint};

/// The settings proofing uses, built by `app.rs` from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub population: Option<Endpoint>,
    pub carrier: Option<Endpoint>,
    pub face: Option<Endpoint>,
    pub registry: Option<Endpoint>,
    /// How long one connector call may take.
    pub timeout: std::time::Duration,
    /// Seconds after which a population or registry record is asked again.
    pub recheck_ttl: i64,
    pub attempts_per_person: i64,
    pub attempts_per_address: i64,
    pub face_session_ttl: i64,
    pub face_min_score: i64,
    /// Where the face provider sends the browser back (`{issuer}/account/verify/face/return`).
    pub face_return_url: String,
    /// The provider's page the browser is sent to (`?session=` added): configured, never taken from the
    /// provider's answer.
    pub face_page: Option<url::Url>,
    /// Most enterprises one registry sweep may suspend, and most accounts one population sweep may
    /// lock; past it the sweep stops and says so.
    pub suspend_brake: i64,
    /// Most bindings the registry sweep may restore automatically per rolling 24 hours.
    pub restore_brake: i64,
    /// How long one node holds the sweep's lease, seconds (the sweep's interval).
    pub sweep_interval: i64,
}

type Effect<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// What [`Host::appoint`] answers: the representation id (none: the appointment is no longer pending),
/// or the rule that refused it; an error only for a failure of the store.
pub type Appointed<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<Result<Option<String>, String>>> + Send + 'a>>;

/// What proofing asks of the rest of yunid that is not its own to do: cutting a person off everywhere
/// (sessions ended with back-channel logout, grants revoked — what an admin lock does) and recording an
/// appointment under the appointment rules (`services::identity`). Implemented by `app.rs`.
pub trait Host: Send + Sync {
    fn end_everything<'a>(&'a self, person_id: &'a str, now: i64) -> Effect<'a>;
    /// Records an agent or manager appointed by `appointer_id` under `services::identity`'s appointment
    /// rules (`plan_agent`, `plan_manager`), together with the pending appointment `appointment_id`
    /// accepted by `by`, in one transaction; returns the representation id (none, and nothing
    /// recorded, when the appointment is no longer pending), or the rule that refused it; an error
    /// only for a failure of the store.
    fn appoint<'a>(
        &'a self,
        appointment_id: &'a str,
        appointer_id: &'a str,
        new: crate::services::identity::NewRepresentation,
        by: &'a str,
        now: i64,
    ) -> Appointed<'a>;
}

/// Who did what to whom, from where, with what outcome: an audit event's head.
pub struct Event<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub address: &'a str,
    pub outcome: &'a str,
}

/// Everything proofing works with.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub http: &'a reqwest::Client,
    pub settings: &'a Settings,
    pub rng: &'a dyn Random,
    pub metrics: &'a Metrics,
    pub host: &'a dyn Host,
    /// Read only to fence a long sweep by its lease (each item checks the lease against the time then,
    /// not the sweep's start); every decision still takes the `now` it was given.
    pub clock: &'a crate::clock::Clock,
}

impl Ctx<'_> {
    pub fn connectors(&self) -> Connectors<'_> {
        Connectors {
            http: self.http,
            settings: self.settings,
            metrics: self.metrics,
        }
    }

    /// Records an audit event; proofing's events name people by internal id and checks by transaction.
    pub async fn audit(&self, e: Event<'_>, detail: serde_json::Value, now: i64) {
        let event = NewEvent {
            actor: e.actor,
            action: e.action,
            subject: e.subject,
            address: e.address,
            outcome: e.outcome,
            detail: detail.to_string(),
            ..Default::default()
        };
        if let Err(err) = self.db.append_audit(&event, now).await {
            tracing::error!(error = %err, action = e.action, "audit event could not be recorded");
        }
    }

    /// Queues an SMS notice (no code, no link, no typed text) in the SMS outbox, worth a day.
    pub async fn notify(&self, phone: Option<&str>, template: &str, text: &str, now: i64) {
        if phone
            .and_then(|p| crate::identity::Phone::parse(p).ok())
            .is_none()
        {
            return;
        }
        self.notify_or_nobody(phone, template, text, now).await;
    }

    /// Like [`Ctx::notify`], but with no (usable) phone it still does the same work: the message is
    /// sealed and a row written to the outbox, one with nothing in it that the outbox drops unsent
    /// (`sealed` NULL). Where an answer must not show whether someone is registered.
    pub async fn notify_or_nobody(&self, phone: Option<&str>, template: &str, text: &str, now: i64) {
        let phone = phone.and_then(|p| crate::identity::Phone::parse(p).ok());
        let message = crate::services::sms::SmsMessage {
            to: phone.as_ref().map_or("+8613800000000", |p| p.as_str()).to_owned(),
            template: template.to_owned(),
            code: String::new(),
            text: text.to_owned(),
        };
        let id = crate::ids::new_id(now, self.rng).to_string();
        let queued = async {
            let sealed = self
                .secrets
                .encrypt(&serde_json::to_string(&message)?, id.as_bytes())?;
            let sealed = phone.is_some().then_some(sealed);
            self.db
                .enqueue_sms(&id, sealed.as_deref(), now, now + 24 * 3600)
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = queued.await {
            tracing::error!(error = %e, template, "proofing notice could not be queued");
        }
    }
}

/// Why a proofing step did not go through. The page says which and what to do; none of them carries an
/// ID number or an authority's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProofingError {
    /// The connector this step needs is not configured here.
    #[error("the {0} check is not available here")]
    NotConfigured(Connector),
    /// The authority was slow, down or answered something unreadable: try later.
    #[error("the {0} check is unavailable; try later")]
    Unavailable(Connector),
    /// The authority answered: no match. The counter is the way on.
    #[error("the {0} check did not match")]
    Mismatch(Connector),
    /// Too many attempts for this person or from this address.
    #[error("too many attempts; try later")]
    Throttled,
    /// A step needs the one before it (a verified phone for level 2, level 2 for level 3 or a binding).
    #[error("needs real-name level {0} first")]
    NeedsLevel(i64),
    #[error("needs a verified phone first")]
    NeedsPhone,
    /// The population record is cancelled or the person deceased: the account is locked.
    #[error("the population record is closed; the account is locked")]
    RecordClosed,
    /// The face session is unknown, used, expired, or belongs to another browser or person.
    #[error("this face verification session is not valid here")]
    FaceSession,
    /// The face verification did not pass (no liveness, low score, or the person gave up).
    #[error("the face verification did not pass")]
    FaceFailed,
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// The registry does not know the credit code.
    #[error("the registry has no enterprise with this credit code")]
    UnknownEnterprise,
    /// The enterprise is not active in the registry (revoked, cancelled).
    #[error("the enterprise is {0} in the registry")]
    EnterpriseInactive(String),
    /// The registry names someone else as the legal representative.
    #[error("the registry names another legal representative")]
    NotLegalRepresentative,
    #[error("already bound")]
    AlreadyBound,
    /// A super admin suspended this person's binding of the enterprise: binding again does not undo it.
    #[error("an administrator suspended this binding")]
    SuspendedByAdmin,
    /// An admin deactivated the organisation: binding does not reactivate it.
    #[error("an administrator deactivated this organisation")]
    OrgDeactivated,
    /// The appointment was not accepted in time.
    #[error("this appointment has expired")]
    Expired,
    #[error("not found")]
    NotFound,
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ProofingError {
    fn from(e: sqlx::Error) -> Self {
        ProofingError::Internal(e.into())
    }
}

/// Reserves one attempt against the person and one against the address (in the database, so the limits
/// hold across nodes); false when either is held back.
pub async fn reserve_attempt(
    ctx: &Ctx<'_>,
    person_id: &str,
    address: &str,
    now: i64,
) -> Result<bool, ProofingError> {
    let window = 24 * 3600;
    let person = crate::store::login::Limit {
        max: ctx.settings.attempts_per_person.max(1),
        window,
        forget_before: now - window,
    };
    let addr = crate::store::login::Limit {
        max: ctx.settings.attempts_per_address.max(1),
        window,
        forget_before: now - window,
    };
    let bucket = crate::services::login::address_bucket(address);
    let by_person = ctx
        .db
        .reserve_attempt(&format!("proofing:person:{person_id}"), person, now)
        .await?;
    if !by_person {
        ctx.metrics.throttled("proofing_person");
        return Ok(false);
    }
    if !ctx
        .db
        .reserve_attempt(&format!("proofing:addr:{bucket}"), addr, now)
        .await?
    {
        ctx.metrics.throttled("proofing_address");
        return Ok(false);
    }
    Ok(true)
}

/// The proofing settings from the configuration (connector URLs checked here, at start).
pub fn settings(config: &crate::config::Config) -> anyhow::Result<Settings> {
    let c = config;
    // https only, unless the development switch for insecure URLs is on.
    let http = c.allow_insecure_redirects;
    let face = Endpoint::from_config(
        "proofing_face_url",
        c.proofing_face_url.as_deref(),
        c.proofing_face_token.as_deref(),
        http,
    )?;
    let face_page = match (&face, c.proofing_face_page_url.as_deref().map(str::trim)) {
        (None, _) => None,
        (Some(_), Some(page)) if !page.is_empty() => {
            Some(connectors::checked_url("proofing_face_page_url", page, http)?)
        }
        (Some(f), _) => Some(f.page_url()),
    };
    Ok(Settings {
        population: Endpoint::from_config(
            "proofing_population_url",
            c.proofing_population_url.as_deref(),
            c.proofing_population_token.as_deref(),
            http,
        )?,
        carrier: Endpoint::from_config(
            "proofing_carrier_url",
            c.proofing_carrier_url.as_deref(),
            c.proofing_carrier_token.as_deref(),
            http,
        )?,
        face,
        face_page,
        registry: Endpoint::from_config(
            "proofing_registry_url",
            c.proofing_registry_url.as_deref(),
            c.proofing_registry_token.as_deref(),
            http,
        )?,
        suspend_brake: c.proofing_suspend_brake.max(1),
        restore_brake: c.proofing_restore_brake.max(1),
        sweep_interval: c.proofing_sweep_interval.clamp(1, 86_400),
        timeout: std::time::Duration::from_millis(c.proofing_timeout_ms.clamp(100, 30_000)),
        recheck_ttl: c.proofing_recheck_ttl.max(60),
        attempts_per_person: c.proofing_attempts_per_person,
        attempts_per_address: c.proofing_attempts_per_address,
        face_session_ttl: c.proofing_face_session_ttl.clamp(60, 3600),
        face_min_score: c.proofing_face_min_score.clamp(0, 100),
        face_return_url: c.endpoint("/account/verify/face/return"),
    })
}

/// The lease that lets one node at a time run the re-check sweep.
pub const SWEEP_LEASE: &str = "proofing_sweep";

/// Background work: population records and registry records due for a re-check. Only the node
/// (`node`) holding the sweep's lease in the database runs it, so the nodes of a cluster never sweep
/// (and ask the authorities) twice at once; false when another node held it. The lease is kept for
/// the whole sweep interval (not given back after the sweep), so the cluster sweeps once per interval
/// whatever the number of nodes; a sweep checks it still holds the lease before each write and stops
/// when another node took it over.
pub async fn sweep(ctx: &Ctx<'_>, node: &str, now: i64) -> Result<bool, ProofingError> {
    let lease = ctx.settings.sweep_interval.max(60);
    if !ctx.db.take_lease(SWEEP_LEASE, node, now, now + lease).await? {
        return Ok(false);
    }
    // The population sweep failing does not hold up the registry sweep.
    let population = levels::recheck_due(ctx, node, now).await;
    let registry = orgs::recheck_due(ctx, node, now).await;
    population.and(registry).map(|_| true)
}

/// The window of the brake, seconds: at most `suspend_brake` automatic locks (population) or
/// suspensions (registry) per rolling 24 hours across the cluster.
pub const BRAKE_WINDOW: i64 = 86_400;

/// Whether one more automatic lock (`population`) or suspension (`registry`) is allowed: not once
/// that brake is tripped (latched in the database until a super admin clears it), nor once
/// `suspend_brake` of them were made in the last 24 hours (or since a super admin last cleared that
/// brake while it was latched), by any node, sweep or page.
pub async fn may_close(ctx: &Ctx<'_>, kind: &str, now: i64) -> Result<bool, ProofingError> {
    if ctx.db.brakes_tripped().await?.iter().any(|(k, _)| k == kind) {
        return Ok(false);
    }
    // A super admin clearing this brake, latched, starts its count again.
    let since = (now - BRAKE_WINDOW).max(ctx.db.brake_cleared_at(kind).await?.unwrap_or(0));
    Ok(ctx.db.closures_since(kind, since).await? < brake_of(ctx, kind))
}

/// The brake of `kind`: `restore` has its own (`proofing_restore_brake`), locks and suspensions share
/// `proofing_suspend_brake`.
pub fn brake_of(ctx: &Ctx<'_>, kind: &str) -> i64 {
    match kind {
        "restore" => ctx.settings.restore_brake,
        _ => ctx.settings.suspend_brake,
    }
}

/// The brakes as an admin sees them: each kind (`population`, `registry`, `restore`), whether it is
/// latched (and by what: `sweep` or `page`), how many it counted in the current window and its limit.
pub async fn brake_state(ctx: &Ctx<'_>, now: i64) -> Result<Vec<BrakeState>, ProofingError> {
    let tripped = ctx.db.brakes_tripped().await?;
    let mut out = Vec::new();
    for kind in ["population", "registry", "restore"] {
        let since = (now - BRAKE_WINDOW).max(ctx.db.brake_cleared_at(kind).await?.unwrap_or(0));
        out.push(BrakeState {
            kind,
            tripped_by: tripped.iter().find(|(k, _)| k == kind).map(|(_, by)| by.clone()),
            counted: ctx.db.closures_since(kind, since).await?,
            limit: brake_of(ctx, kind),
        });
    }
    Ok(out)
}

/// One brake's state (see [`brake_state`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrakeState {
    pub kind: &'static str,
    /// `sweep` or `page` when latched; none when not.
    pub tripped_by: Option<String>,
    /// Automatic actions counted in the last 24 hours (or since a super admin last cleared this brake,
    /// latched).
    pub counted: i64,
    pub limit: i64,
}

/// Whether this sweep may still write: it holds the sweep's lease, and the lease has not expired by the
/// time it is asked (a fresh reading of the clock, not the sweep's start: a node whose sweep outlived
/// its lease stops even before another node takes the lease over).
pub async fn still_holds(ctx: &Ctx<'_>, node: &str) -> Result<bool, ProofingError> {
    Ok(ctx.db.lease_held(SWEEP_LEASE, node, ctx.clock.now()).await?)
}

/// A lock or suspension held back by the brake (`kind`: `population` or `registry`; `by`: `sweep` or
/// `page`): the brake is latched in the database (no node locks or suspends automatically until a
/// super admin clears it, `DELETE /admin/api/proofing/brake`). When this call tripped it: a warning
/// in the log, the `yunid_proofing_brake_total` counter, and an audit event (`proofing.brake`,
/// outcome `failure`) an admin finds in the audit search.
pub async fn braked(ctx: &Ctx<'_>, kind: &'static str, by: &str, now: i64) {
    match ctx.db.trip_brake(kind, by).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "proofing brake not latched");
        }
    }
    tracing::warn!(
        sweep = kind,
        brake = brake_of(ctx, kind),
        "proofing brake tripped: more automatic suspensions, locks or restores than allowed in 24 hours; none more until a super admin clears it; check the authority's answers"
    );
    ctx.metrics.proofing_brake(kind);
    ctx.audit(
        Event {
            actor: "proofing",
            action: "proofing.brake",
            subject: kind,
            address: "",
            outcome: "failure",
        },
        serde_json::json!({ "sweep": kind, "by": by, "brake": brake_of(ctx, kind) }),
        now,
    )
    .await;
}
