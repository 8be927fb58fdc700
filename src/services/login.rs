//! Password login and SSO sessions. No HTTP, no `App`: a login takes the narrow pieces it uses
//! ([`Ctx`]), `now` and the randomness source, and returns a domain result.

use std::future::Future;
use std::pin::Pin;

use crate::crypto::{self, Random, Secrets};
use crate::identity::{Phone, ResidentId};
use crate::metrics::Metrics;
use crate::scope::ScopeSet;
use crate::services::password::Hasher;
use crate::store::Db;
use crate::store::persons::PersonRow;
use crate::store::sessions::{ForRequest, Renewed, SessionRow};

/// The configuration a login reads.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Failed password logins allowed per account (five times as many per address) in `throttle_window`.
    pub max_failures: i64,
    pub throttle_window: i64,
    pub session_absolute_ttl: i64,
    pub session_idle_ttl: i64,
}

/// Ends another person's session on this browser (with its grants and a back-channel logout to its
/// apps): the logout service's work, reached through this port.
pub trait EndSession: Send + Sync {
    fn end_session<'a>(
        &'a self,
        sid: &'a str,
        now: i64,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<bool>> + Send + 'a>>;
}

/// What a login needs; built by `App::login`.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub hasher: &'a Hasher,
    pub metrics: &'a Metrics,
    pub settings: Settings,
    pub rng: &'a dyn Random,
    pub sessions: &'a dyn EndSession,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong username or password (deliberately the same message for both).
    #[error("wrong username or password")]
    Invalid,
    /// Too many failures for this account or address; try later.
    #[error("too many failed logins")]
    Throttled,
    /// The account is locked or disabled (said only after a correct password).
    #[error("the account is not active")]
    Unavailable,
    /// Too many password checks are waiting on this node: nothing was tried; try again shortly.
    #[error("too many password checks are waiting")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for LoginError {
    fn from(e: sqlx::Error) -> Self {
        LoginError::Internal(e.into())
    }
}

impl LoginError {
    /// The `outcome` label of the login metric.
    pub fn outcome(&self) -> &'static str {
        match self {
            LoginError::Invalid => "invalid",
            LoginError::Throttled => "throttled",
            LoginError::Unavailable => "unavailable",
            LoginError::Busy => "busy",
            LoginError::Internal(_) => "error",
        }
    }
}

pub use crate::amr::{Amr, Method};

/// Where persons are looked up: the database, and the keyed hash of their identifiers.
pub trait People {
    fn db(&self) -> &Db;
    fn secrets(&self) -> &Secrets;
}

impl People for Ctx<'_> {
    fn db(&self) -> &Db {
        self.db
    }
    fn secrets(&self) -> &Secrets {
        self.secrets
    }
}

/// Finds a person by resident ID number or phone number.
pub async fn find_person(
    people: &(impl People + ?Sized),
    username: &str,
) -> anyhow::Result<Option<PersonRow>> {
    let (db, secrets) = (people.db(), people.secrets());
    if let Ok(id) = ResidentId::parse(username) {
        return Ok(db.person_by_id_hash(&secrets.id_hash(id.as_str())).await?);
    }
    if let Ok(phone) = Phone::parse(username) {
        return Ok(db.person_by_phone(phone.as_str()).await?);
    }
    Ok(None)
}

/// How long failed logins are remembered for progressive throttling.
pub const THROTTLE_MEMORY: i64 = 24 * 3600;

/// Progressive throttling: below `max` failures (in the last day) nothing is held back; from `max` on,
/// the account or address waits `window` after its last failure, doubling for every further `max`
/// failures (at most 32 windows). The store applies the same rule in one statement
/// (`Db::reserve_attempt`); this is its reference.
pub fn blocked(failures: i64, last_failure: Option<i64>, max: i64, window: i64, now: i64) -> bool {
    if failures < max || max <= 0 {
        return false;
    }
    let steps = ((failures - max) / max).min(5);
    last_failure.is_some_and(|last| now - last < window << steps)
}

/// The throttle key of what was typed as a username: its normalised identifier (every spelling of one
/// ID number or phone number counts together), computed the same way whether or not an account has
/// it, so throttling treats known and unknown accounts alike. Keyed hashes: no ID number in the table.
pub fn account_key(secrets: &Secrets, username: &str) -> String {
    if let Ok(id) = ResidentId::parse(username) {
        return format!("acct:id:{}", secrets.id_hash(id.as_str()));
    }
    if let Ok(phone) = Phone::parse(username) {
        return format!("acct:phone:{}", secrets.id_hash(phone.as_str()));
    }
    // Matches no account; counted all the same, like any other name.
    let other = username.trim().to_lowercase();
    format!("acct:other:{}", secrets.id_hash(&other))
}

/// Reserves one attempt against `key` (see `Db::reserve_attempt`); a `max` of 0 or less turns the
/// limit off.
pub async fn reserve(db: &Db, key: &str, max: i64, window: i64, now: i64) -> anyhow::Result<bool> {
    if max <= 0 {
        return Ok(true);
    }
    let limit = crate::store::login::Limit {
        max,
        window,
        forget_before: now - THROTTLE_MEMORY,
    };
    Ok(db.reserve_attempt(key, limit, now).await?)
}

/// The address a per-address limit counts against: an IPv4 address as it is, an IPv6 address by its /64
/// (one subscriber is usually given a whole /64, and every /128 in it would otherwise be a fresh limit).
pub fn address_bucket(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or_else(String::new, |v4| v4.to_string()),
        _ => address.to_owned(),
    }
}

/// Checks a password login. An attempt is reserved against the account and the address (in the
/// database, one statement each, so the limit holds across nodes and under concurrency) before the
/// hash runs, and given back when it was not a failure. Unknown accounts cost the same hash as known
/// ones, and the hashing queue is bounded: a full one is refused at once, without a hash.
pub async fn password_login(
    ctx: &Ctx<'_>,
    username: &str,
    password: &str,
    address: &str,
    now: i64,
) -> Result<PersonRow, LoginError> {
    let db = ctx.db;
    let account_key = account_key(ctx.secrets, username);
    let address_key = format!("addr:{}", address_bucket(address));
    let (max, window) = (ctx.settings.max_failures, ctx.settings.throttle_window);
    if !reserve(db, &address_key, max.saturating_mul(5), window, now).await? {
        ctx.metrics.throttled("login_address");
        return Err(LoginError::Throttled);
    }
    if !reserve(db, &account_key, max, window, now).await? {
        db.refund_attempt(&address_key).await?;
        ctx.metrics.throttled("login_account");
        return Err(LoginError::Throttled);
    }
    let person = find_person(ctx, username).await?;
    let stored = person.as_ref().and_then(|p| p.password_hash.clone());
    let verified = match ctx.hasher.verify(stored, password.to_owned()).await {
        Ok(v) => v,
        Err(e) if e.downcast_ref::<crate::services::password::Busy>().is_some() => {
            // Nothing was tried: the reservations go back.
            db.refund_attempt(&account_key).await?;
            db.refund_attempt(&address_key).await?;
            ctx.metrics.throttled("password_queue");
            return Err(LoginError::Busy);
        }
        Err(e) => return Err(e.into()),
    };
    let ok = verified
        // A temporary password from the counter stops working when it expires.
        && person
            .as_ref()
            .and_then(|p| p.password_expires_at)
            .is_none_or(|until| now < until);
    if let (false, Some(p)) = (ok, &person) {
        // Written in the background: the answer must not wait for the audit chain only when the account
        // exists (that wait would tell which accounts exist).
        let (db, subject, address) = (db.clone(), p.id.clone(), address.to_owned());
        tokio::spawn(async move {
            crate::services::audit::record_quietly(
                &db,
                now,
                crate::store::audit::NewEvent {
                    actor: "anonymous",
                    action: "login",
                    subject: &subject,
                    address: &address,
                    outcome: "failure",
                    detail: r#"{"method":"pwd"}"#.into(),
                    ..Default::default()
                },
            )
            .await;
        });
    }
    // A failure keeps its reservations: they are the record of it.
    let Some(person) = person.filter(|_| ok) else {
        return Err(LoginError::Invalid);
    };
    db.refund_attempt(&address_key).await?;
    db.clear_attempts(&account_key).await?;
    if !person.status.is_active() {
        return Err(LoginError::Unavailable);
    }
    Ok(person)
}

/// How a login treats the browser's live session of the same person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// A step-up may add this login's factor to the session's (both count).
    StepUp,
    /// A forced re-authentication (`prompt=login`, `max_age`): only this login's factors count.
    Replace,
}

/// A sign-in: the new session cookie value and the session as stored.
pub struct SignedIn {
    pub cookie: String,
    pub session: SessionRow,
    /// For a sign-in for a pending request: what the person consented to for its app, read by the
    /// statement that wrote the session (`None`: not read).
    pub consented: Option<Option<ScopeSet>>,
}

/// How a [`sign_in`] ended.
pub enum SignIn {
    Signed(SignedIn),
    /// The person is not active: nothing written.
    Unavailable,
    /// The pending request the sign-in was for was answered already (review M1): no session made.
    Answered,
}

/// Signs a person in with `methods` (e.g. `[Pwd]`, `[Sms]`, `[Hwk, User]`). A live session of the same
/// person is renewed in place — same `sid`, so apps and logout keep finding it; fresh `auth_time` — and
/// either gains these methods (a step-up: a factor the session lacked, both count) or, for any other
/// login, holds only these (a re-authentication proves only what was typed now: a password typed again
/// must not refresh an old second factor). A different person gets a new session. Either way the
/// browser gets a new cookie value (no session fixation). Whether the person is active, and whether
/// the pending request it is for (`request`: the hash of its id, and its app) is unanswered, is checked
/// by the statement that writes the session; only when it writes nothing is the marker read, to say why.
/// That statement also reads what the person consented to for the request's app.
pub async fn sign_in(
    ctx: &Ctx<'_>,
    current: Option<(&str, &SessionRow)>,
    person_id: &str,
    methods: &[Method],
    renewal: Renewal,
    request: Option<ForRequest<'_>>,
    now: i64,
) -> anyhow::Result<SignIn> {
    if let Some((cookie, session)) = current.filter(|(_, s)| s.person_id == person_id) {
        let held = &session.amr;
        let adds_a_factor = methods.iter().any(|m| !held.contains(*m));
        // Factors carried from elsewhere (a phone's grant, an upstream) were proven on another device,
        // perhaps months ago: a step-up here never joins them (review F6). It counts only what this
        // browser proves from now on, so two factors need two of its own.
        let mut amr = if renewal == Renewal::StepUp && adds_a_factor && !held.is_carried() {
            held.clone()
        } else {
            Amr::default()
        };
        amr.add(methods);
        let acr = amr.acr();
        let amr = amr.with_mfa();
        let new_cookie = ctx.rng.token();
        let new_hash = crypto::token_hash(&new_cookie);
        let renewed = Renewed {
            amr: &amr,
            acr,
            auth_time: now,
        };
        if let Some(consented) = ctx
            .db
            .upgrade_session(&crypto::token_hash(cookie), &new_hash, renewed, now, request)
            .await?
        {
            let session = SessionRow {
                id_hash: new_hash,
                amr,
                acr,
                auth_time: now,
                last_seen: now,
                ..session.clone()
            };
            return Ok(SignIn::Signed(SignedIn {
                cookie: new_cookie,
                session,
                consented: request.map(|_| consented),
            }));
        }
    }
    let amr = Amr::of(methods);
    let acr = amr.acr();
    let started = start_session_at(ctx, person_id, amr, acr, now, request, now).await?;
    let Some(signed) = started else {
        // Nothing written: the marker says whether it was the request (else the person).
        if let Some(r) = request
            && ctx.db.auth_request_answered(r.id_hash).await?
        {
            return Ok(SignIn::Answered);
        }
        return Ok(SignIn::Unavailable);
    };
    // Another person signed in on this browser (a shared counter terminal): the previous person's
    // session ends, with its grants and a back-channel logout to its apps.
    if let Some((_, previous)) = current.filter(|(_, s)| s.person_id != person_id) {
        ctx.sessions.end_session(&previous.sid, now).await?;
    }
    Ok(SignIn::Signed(signed))
}

/// A sign-in made elsewhere and carried over as it is (scan to sign in: the phone's grant): its methods,
/// level and time.
#[derive(Debug, Clone, Copy)]
pub struct Carried<'a> {
    pub amr: &'a Amr,
    pub acr: i64,
    pub auth_time: i64,
}

/// Signs a person in with a sign-in `carried` from elsewhere: the session holds exactly its methods,
/// level and `auth_time` — nothing of the browser's earlier session is added, and the time is the
/// original sign-in's, not now. A live session of the same person is renewed in place (same `sid`, new
/// cookie); another person's session ends. The browser gets a new cookie value either way. `None` when
/// the person is not active.
pub async fn sign_in_carried(
    ctx: &Ctx<'_>,
    current: Option<(&str, &SessionRow)>,
    person_id: &str,
    carried: Carried<'_>,
    now: i64,
) -> anyhow::Result<Option<SignedIn>> {
    let active = ctx
        .db
        .person(person_id)
        .await?
        .is_some_and(|p| p.status.is_active());
    if !active {
        return Ok(None);
    }
    if let Some((cookie, session)) = current.filter(|(_, s)| s.person_id == person_id) {
        let new_cookie = ctx.rng.token();
        let new_hash = crypto::token_hash(&new_cookie);
        let renewed = ctx
            .db
            .upgrade_session(
                &crypto::token_hash(cookie),
                &new_hash,
                Renewed {
                    amr: carried.amr,
                    acr: carried.acr,
                    auth_time: carried.auth_time,
                },
                now,
                None,
            )
            .await?;
        if renewed.is_some() {
            let session = SessionRow {
                id_hash: new_hash,
                amr: carried.amr.clone(),
                acr: carried.acr,
                auth_time: carried.auth_time,
                last_seen: now,
                ..session.clone()
            };
            return Ok(Some(SignedIn {
                cookie: new_cookie,
                session,
                consented: None,
            }));
        }
    }
    let Some(signed) = start_session_at(
        ctx,
        person_id,
        carried.amr.clone(),
        carried.acr,
        carried.auth_time,
        None,
        now,
    )
    .await?
    else {
        return Ok(None);
    };
    if let Some((_, previous)) = current.filter(|(_, s)| s.person_id != person_id) {
        ctx.sessions.end_session(&previous.sid, now).await?;
    }
    Ok(Some(signed))
}

/// A new SSO session for an active person (a new id at every login: no fixation), whose sign-in
/// happened at `auth_time`; for a pending request (`request`), only while it is unanswered (and what
/// the person consented to for its app is read back). `None`: nothing written.
async fn start_session_at(
    ctx: &Ctx<'_>,
    person_id: &str,
    amr: Amr,
    acr: i64,
    auth_time: i64,
    request: Option<ForRequest<'_>>,
    now: i64,
) -> anyhow::Result<Option<SignedIn>> {
    let cookie = ctx.rng.token();
    let session = SessionRow {
        id_hash: crypto::token_hash(&cookie),
        sid: ctx.rng.uuid_v4().simple().to_string(),
        person_id: person_id.to_owned(),
        auth_time,
        amr,
        acr,
        created_at: now,
        last_seen: now,
        expires_at: now + ctx.settings.session_absolute_ttl,
    };
    let Some(consented) = ctx.db.insert_session_if_active(&session, request).await? else {
        return Ok(None);
    };
    Ok(Some(SignedIn {
        cookie,
        session,
        consented: request.map(|_| consented),
    }))
}

/// The live session a cookie names and its person, refreshing the session's idle timer.
pub async fn current_session(
    db: &Db,
    idle_ttl: i64,
    cookie: &str,
    now: i64,
) -> anyhow::Result<Option<(SessionRow, PersonRow)>> {
    let hash = crypto::token_hash(cookie);
    let found = db.live_session_with_person(&hash, now, now - idle_ttl).await?;
    // Refresh the idle timer at most every half minute: a write per request would cost more than it buys.
    if found.as_ref().is_some_and(|(s, _)| now - s.last_seen > 30) {
        db.touch_session(&hash, now).await?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_limits_count_an_ipv6_subscriber_by_its_64() {
        assert_eq!(address_bucket("203.0.113.9"), "203.0.113.9");
        assert_eq!(address_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            address_bucket("2001:db8:1:2:ffff::9"),
            address_bucket("2001:db8:1:2::77")
        );
        assert_ne!(
            address_bucket("2001:db8:1:3::1"),
            address_bucket("2001:db8:1:2::1")
        );
        assert_eq!(address_bucket("::ffff:203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn throttling_grows_with_repeated_failures() {
        let (max, window, now) = (10, 900, 1_000_000);
        assert!(
            !blocked(9, Some(now), max, window, now),
            "below the limit nothing is held back"
        );
        assert!(
            blocked(10, Some(now - 899), max, window, now),
            "at the limit: one window"
        );
        assert!(!blocked(10, Some(now - 900), max, window, now));
        assert!(
            blocked(20, Some(now - 1799), max, window, now),
            "twice the limit: two windows"
        );
        assert!(!blocked(20, Some(now - 1800), max, window, now));
        assert!(
            blocked(500, Some(now - 32 * 900 + 1), max, window, now),
            "capped at 32 windows"
        );
        assert!(!blocked(500, Some(now - 32 * 900), max, window, now));
    }
}
