//! Password login and SSO sessions.

use crate::app::App;
use crate::crypto;
use crate::identity::{Phone, ResidentId};
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong username or password (deliberately the same message for both).
    Invalid,
    /// Too many failures for this account or address; try later.
    Throttled,
    /// The account is locked or disabled (said only after a correct password).
    Unavailable,
    /// Too many password checks are waiting on this node: nothing was tried; try again shortly.
    Busy,
}

impl LoginError {
    /// The `outcome` label of the login metric.
    pub fn outcome(&self) -> &'static str {
        match self {
            LoginError::Invalid => "invalid",
            LoginError::Throttled => "throttled",
            LoginError::Unavailable => "unavailable",
            LoginError::Busy => "busy",
        }
    }
}

/// Finds a person by resident ID number or phone number.
pub async fn find_person(app: &App, username: &str) -> anyhow::Result<Option<PersonRow>> {
    if let Ok(id) = ResidentId::parse(username) {
        return Ok(app
            .db
            .person_by_id_hash(&app.secrets.id_hash(id.as_str()))
            .await?);
    }
    if let Ok(phone) = Phone::parse(username) {
        return Ok(app.db.person_by_phone(phone.as_str()).await?);
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
pub fn account_key(app: &App, username: &str) -> String {
    if let Ok(id) = ResidentId::parse(username) {
        return format!("acct:id:{}", app.secrets.id_hash(id.as_str()));
    }
    if let Ok(phone) = Phone::parse(username) {
        return format!("acct:phone:{}", app.secrets.id_hash(phone.as_str()));
    }
    // Matches no account; counted all the same, like any other name.
    let other = username.trim().to_lowercase();
    format!("acct:other:{}", app.secrets.id_hash(&other))
}

/// Reserves one attempt against `key` (see `Db::reserve_attempt`); a `max` of 0 or less turns the
/// limit off.
pub async fn reserve(app: &App, key: &str, max: i64, window: i64, now: i64) -> anyhow::Result<bool> {
    if max <= 0 {
        return Ok(true);
    }
    let limit = crate::store::login::Limit {
        max,
        window,
        forget_before: now - THROTTLE_MEMORY,
    };
    Ok(app.db.reserve_attempt(key, limit, now).await?)
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
    app: &App,
    username: &str,
    password: &str,
    address: &str,
    now: i64,
) -> anyhow::Result<Result<PersonRow, LoginError>> {
    let account_key = account_key(app, username);
    let address_key = format!("addr:{}", address_bucket(address));
    let (max, window) = (app.config.login_max_failures, app.config.login_throttle_window);
    if !reserve(app, &address_key, max.saturating_mul(5), window, now).await? {
        app.metrics.throttled("login_address");
        return Ok(Err(LoginError::Throttled));
    }
    if !reserve(app, &account_key, max, window, now).await? {
        app.db.refund_attempt(&address_key).await?;
        app.metrics.throttled("login_account");
        return Ok(Err(LoginError::Throttled));
    }
    let person = find_person(app, username).await?;
    let stored = person.as_ref().and_then(|p| p.password_hash.clone());
    let verified = match app.hasher.verify(stored, password.to_owned()).await {
        Ok(v) => v,
        Err(e) if e.downcast_ref::<crate::services::password::Busy>().is_some() => {
            // Nothing was tried: the reservations go back.
            app.db.refund_attempt(&account_key).await?;
            app.db.refund_attempt(&address_key).await?;
            app.metrics.throttled("password_queue");
            return Ok(Err(LoginError::Busy));
        }
        Err(e) => return Err(e),
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
        let (app, subject, address) = (app.clone(), p.id.clone(), address.to_owned());
        tokio::spawn(async move {
            crate::services::audit::record_quietly(
                &app.db,
                app.now(),
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
        return Ok(Err(LoginError::Invalid));
    };
    app.db.refund_attempt(&address_key).await?;
    app.db.clear_attempts(&account_key).await?;
    if person.status != "active" {
        return Ok(Err(LoginError::Unavailable));
    }
    Ok(Ok(person))
}

/// The level a set of methods reaches: 2 for two distinct factors or a user-verified passkey, else 1.
pub fn acr_of(amr: &[&str]) -> i64 {
    let factors = amr
        .iter()
        .filter(|m| matches!(**m, "pwd" | "sms" | "hwk" | "swk"))
        .count();
    let verified_key = amr.iter().any(|m| matches!(*m, "hwk" | "swk")) && amr.contains(&"user");
    if factors >= 2 || verified_key { 2 } else { 1 }
}

/// How a login treats the browser's live session of the same person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// A step-up may add this login's factor to the session's (both count).
    StepUp,
    /// A forced re-authentication (`prompt=login`, `max_age`): only this login's factors count.
    Replace,
}

/// Signs a person in with `methods` (e.g. `["pwd"]`, `["sms"]`, `["hwk", "user"]`). A live session of
/// the same person is renewed in place — same `sid`, so apps and logout keep finding it; fresh
/// `auth_time` — and either gains these methods (a step-up: a factor the session lacked, both count) or,
/// for any other login, holds only these (a re-authentication proves only what was typed now: a password
/// typed again must not refresh an old second factor). A different person gets a new session. Either way
/// the browser gets a new cookie value (no session fixation).
pub async fn sign_in(
    app: &App,
    current: Option<(&str, &SessionRow)>,
    person_id: &str,
    methods: &[&str],
    renewal: Renewal,
    now: i64,
) -> anyhow::Result<(String, SessionRow)> {
    if let Some((cookie, session)) = current.filter(|(_, s)| s.person_id == person_id) {
        let held: Vec<&str> = session
            .amr
            .split(' ')
            .filter(|m| !m.is_empty() && *m != "mfa")
            .collect();
        let adds_a_factor = methods.iter().any(|m| !held.contains(m));
        let mut amr: Vec<&str> = if renewal == Renewal::StepUp && adds_a_factor {
            held
        } else {
            Vec::new()
        };
        for m in methods {
            if !amr.contains(m) {
                amr.push(m);
            }
        }
        let acr = acr_of(&amr);
        if amr
            .iter()
            .filter(|m| matches!(**m, "pwd" | "sms" | "hwk" | "swk"))
            .count()
            >= 2
        {
            amr.push("mfa");
        }
        let amr = amr.join(" ");
        let new_cookie = crypto::random_token();
        let new_hash = crypto::token_hash(&new_cookie);
        if app
            .db
            .upgrade_session(&crypto::token_hash(cookie), &new_hash, &amr, acr, now, now)
            .await?
        {
            let row = SessionRow {
                id_hash: new_hash,
                amr,
                acr,
                auth_time: now,
                last_seen: now,
                ..session.clone()
            };
            return Ok((new_cookie, row));
        }
    }
    // Another person signs in on this browser (a shared counter terminal): the previous person's
    // session ends, with its grants and a back-channel logout to its apps.
    if let Some((_, previous)) = current.filter(|(_, s)| s.person_id != person_id) {
        app.logout().end_session(&previous.sid, now).await?;
    }
    start_session(app, person_id, &methods.join(" "), acr_of(methods), now).await
}

/// A sign-in made elsewhere and carried over as it is (scan to sign in: the phone's grant): its methods,
/// level and time.
#[derive(Debug, Clone, Copy)]
pub struct Carried<'a> {
    pub amr: &'a str,
    pub acr: i64,
    pub auth_time: i64,
}

/// Signs a person in with a sign-in `carried` from elsewhere: the session holds exactly its methods,
/// level and `auth_time` — nothing of the browser's earlier session is added, and the time is the
/// original sign-in's, not now. A live session of the same person is renewed in place (same `sid`, new
/// cookie); another person's session ends first. The browser gets a new cookie value either way.
pub async fn sign_in_carried(
    app: &App,
    current: Option<(&str, &SessionRow)>,
    person_id: &str,
    carried: Carried<'_>,
    now: i64,
) -> anyhow::Result<(String, SessionRow)> {
    if let Some((cookie, session)) = current.filter(|(_, s)| s.person_id == person_id) {
        let new_cookie = crypto::random_token();
        let new_hash = crypto::token_hash(&new_cookie);
        let renewed = app
            .db
            .upgrade_session(
                &crypto::token_hash(cookie),
                &new_hash,
                carried.amr,
                carried.acr,
                carried.auth_time,
                now,
            )
            .await?;
        if renewed {
            let row = SessionRow {
                id_hash: new_hash,
                amr: carried.amr.to_owned(),
                acr: carried.acr,
                auth_time: carried.auth_time,
                last_seen: now,
                ..session.clone()
            };
            return Ok((new_cookie, row));
        }
    }
    if let Some((_, previous)) = current.filter(|(_, s)| s.person_id != person_id) {
        app.logout().end_session(&previous.sid, now).await?;
    }
    let cookie = crypto::random_token();
    let row = SessionRow {
        id_hash: crypto::token_hash(&cookie),
        sid: uuid::Uuid::new_v4().simple().to_string(),
        person_id: person_id.to_owned(),
        auth_time: carried.auth_time,
        amr: carried.amr.to_owned(),
        acr: carried.acr,
        created_at: now,
        last_seen: now,
        expires_at: now + app.config.session_absolute_ttl,
    };
    app.db.insert_session(&row).await?;
    Ok((cookie, row))
}

/// A new SSO session (a new id at every login: no fixation). Returns the cookie value and the row.
pub async fn start_session(
    app: &App,
    person_id: &str,
    amr: &str,
    acr: i64,
    now: i64,
) -> anyhow::Result<(String, SessionRow)> {
    let cookie = crypto::random_token();
    let row = SessionRow {
        id_hash: crypto::token_hash(&cookie),
        sid: uuid::Uuid::new_v4().simple().to_string(),
        person_id: person_id.to_owned(),
        auth_time: now,
        amr: amr.to_owned(),
        acr,
        created_at: now,
        last_seen: now,
        expires_at: now + app.config.session_absolute_ttl,
    };
    app.db.insert_session(&row).await?;
    Ok((cookie, row))
}

/// The live session a cookie names and its person, refreshing the session's idle timer.
pub async fn current_session(
    app: &App,
    cookie: &str,
    now: i64,
) -> anyhow::Result<Option<(SessionRow, PersonRow)>> {
    let hash = crypto::token_hash(cookie);
    let found = app
        .db
        .live_session_with_person(&hash, now, now - app.config.session_idle_ttl)
        .await?;
    // Refresh the idle timer at most every half minute: a write per request would cost more than it buys.
    if found.as_ref().is_some_and(|(s, _)| now - s.last_seen > 30) {
        app.db.touch_session(&hash, now).await?;
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
